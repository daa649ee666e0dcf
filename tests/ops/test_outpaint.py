"""Outpaint on images whose true continuation is known (a noisy periodic texture, cropped) and on
a real photograph whose subject must not be cloned into the new border."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from retouch.engines.base import Filler
from retouch.engines.filler import PatchMatchFiller, TeleaFiller
from retouch.engines.segmenter import create_segmenter
from retouch.errors import InvalidParameter
from retouch.ops.outpaint import outpaint
from tests.utils.clones import CHELSEA_FEATURES, CHELSEA_SIDES, chelsea_border, clone_score
from tests.utils.images import periodic_texture

MARGIN = 40  # px cropped from each side of the texture and outpainted back


class ConstantFiller:
    """Fills every hole with one colour; records what it was asked."""

    def __init__(self, colour: tuple[int, int, int]) -> None:
        self.colour = np.array(colour, np.uint8)
        self.calls: list[tuple[tuple[int, ...], int, float, int]] = []
        self.excluded: list[np.ndarray | None] = []

    def fill(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        *,
        creativity: float,
        seed: int,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        self.calls.append((rgb.shape, int(mask.sum()), creativity, seed))
        self.excluded.append(exclude)
        out = rgb.copy()
        out[mask] = self.colour
        return out


class TruthFiller:
    """Fills holes with the true continuation, shifted by ``shift`` grey levels: a stand-in for a
    perfect fill (shift 0) or one that drifts in colour, as a diffusion model's VAE does."""

    def __init__(self, truth: np.ndarray, shift: int) -> None:
        self.truth, self.shift = truth, shift

    def fill(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        *,
        creativity: float,
        seed: int,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        out = rgb.copy()
        out[mask] = np.clip(self.truth[mask].astype(np.int16) + self.shift, 0, 255)
        return out


class DiscSegmenter:
    """Alpha 1 on a disc in the middle of the image, 0 elsewhere."""

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        alpha = np.zeros((h, w), np.float32)
        cv2.circle(alpha, (w // 2, h // 2), min(h, w) // 4, 1.0, -1)
        return alpha


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full texture, the crop given to outpaint and the mask of the border added back."""
    full = periodic_texture(128 + 2 * MARGIN, 160 + 2 * MARGIN)
    crop = full[MARGIN:-MARGIN, MARGIN:-MARGIN]
    border = np.ones(full.shape[:2], bool)
    border[MARGIN:-MARGIN, MARGIN:-MARGIN] = False
    return full, crop, border


def extend(crop: np.ndarray, filler: Filler, creativity: float = 0, seed: int = 0) -> np.ndarray:
    return outpaint(
        crop,
        left=MARGIN,
        top=MARGIN,
        right=MARGIN,
        bottom=MARGIN,
        filler=filler,
        creativity=creativity,
        seed=seed,
    )


def border_error(out: np.ndarray, full: np.ndarray, border: np.ndarray) -> float:
    return float(np.abs(out.astype(np.float32) - full)[border].mean())


def test_geometry_and_original_pixels_are_exact() -> None:
    image = np.random.default_rng(1).integers(0, 256, (130, 150, 3), dtype=np.uint8)
    filler = ConstantFiller((10, 20, 30))
    out = outpaint(
        image, left=7, top=0, right=33, bottom=2000, filler=filler, creativity=0.25, seed=9
    )
    assert out.shape == (130 + 2000, 7 + 150 + 33, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:130, 7:157], image)
    assert filler.calls == [(out.shape, out.shape[0] * out.shape[1] - 130 * 150, 0.25, 9)]
    # Far from the seam the fill is the filler's own.
    assert (out[-1, -1] == (10, 20, 30)).all()


@pytest.mark.slow
def test_continues_a_periodic_texture(scene: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    full, crop, border = scene
    out = extend(crop, PatchMatchFiller())
    assert np.array_equal(out[~border], full[~border])
    error = border_error(out, full, border)
    flat = full.copy()
    flat[border] = crop.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    baselines = {
        "flat": border_error(flat, full, border),
        "telea": border_error(extend(crop, TeleaFiller()), full, border),
    }
    # The texture's own noise alone gives about 4.5 (two sigma-4 samples differ by that on
    # average); a flat fill or Telea's smear scores ten times worse (measured ~6 vs ~52/55).
    assert error < 9, error
    for name, baseline in baselines.items():
        assert error < baseline / 4, (name, error, baseline)


@pytest.mark.slow
def test_creativity_varies_the_fill_and_the_seed_reproduces_it(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    full, crop, border = scene
    filler = PatchMatchFiller()
    coherent = extend(crop, filler, creativity=0, seed=3)
    creative = extend(crop, filler, creativity=1, seed=3)
    assert np.array_equal(extend(crop, filler, creativity=1, seed=3), creative)
    assert np.abs(coherent.astype(np.float32) - creative)[border].mean() > 2
    assert np.array_equal(creative[~border], full[~border])
    # Still a continuation of the texture, not noise.
    assert border_error(creative, full, border) < 12


def test_seam_blend_leaves_a_faithful_fill_alone(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    full, crop, border = scene
    out = extend(crop, TruthFiller(full, 0))
    assert np.abs(out.astype(np.int16) - full).max() <= 1


def test_seam_blend_pulls_a_colour_shift_back_near_the_seam(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    full, crop, border = scene
    out = extend(crop, TruthFiller(full, 20))
    assert np.array_equal(out[~border], full[~border])
    # The row next to the top seam, and the column next to the left seam.
    for name, fill_px, truth_px in [
        ("top", out[MARGIN - 1, MARGIN:-MARGIN], full[MARGIN - 1, MARGIN:-MARGIN]),
        ("left", out[MARGIN:-MARGIN, MARGIN - 1], full[MARGIN:-MARGIN, MARGIN - 1]),
    ]:
        shift = float((fill_px.astype(np.float32) - truth_px).mean())
        assert abs(shift) < 3, (name, shift)


def test_seam_blend_is_continuous_round_the_corners() -> None:
    """Flat grey original, flat dark fill: the correction must be one smooth field, with no
    step where a side band meets a corner region."""
    image = np.full((128, 128, 3), 150, np.uint8)
    out = outpaint(
        image,
        left=60,
        top=60,
        right=60,
        bottom=60,
        filler=ConstantFiller((90, 90, 90)),
        creativity=0,
        seed=0,
    ).astype(np.int16)
    # Next to the original the border takes its colour; far away it keeps the filler's.
    assert abs(out[59, 100, 0] - 150) <= 2 and abs(out[100, 59, 0] - 150) <= 2
    assert abs(out[0, 0, 0] - 90) <= 2
    steps = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    # Where the border meets the original the step is 150 vs ~149; elsewhere a few levels.
    assert steps <= 4, steps


def test_rgba_is_flattened_onto_white() -> None:
    rgba = np.zeros((128, 128, 4), np.uint8)
    rgba[..., :3] = (0, 0, 255)
    rgba[:64, :, 3] = 255  # top half opaque blue, bottom half fully transparent
    out = outpaint(
        rgba,
        left=0,
        top=0,
        right=1,
        bottom=0,
        filler=ConstantFiller((0, 0, 0)),
        creativity=0,
        seed=0,
    )
    assert out.shape == (128, 129, 3)
    assert (out[:64, :128] == (0, 0, 255)).all()
    assert (out[64:, :128] == 255).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"left": -1}, "left must be between 0 and 2000"),
        ({"top": 2001}, "top must be between 0 and 2000"),
        ({"right": 5000}, "right must be between 0 and 2000"),
        ({"bottom": -20}, "bottom must be between 0 and 2000"),
        ({"right": 0}, "At least one of left, top, right and bottom"),
        ({"creativity": -0.01}, "creativity must be between 0 and 1"),
        ({"creativity": 1.5}, "creativity must be between 0 and 1"),
        ({"creativity": float("nan")}, "creativity must be between 0 and 1"),
        ({"height": 127}, "at least 128 px on each side"),
        ({"width": 100}, "at least 128 px on each side"),
    ],
)
def test_parameter_errors(overrides: dict[str, float], message: str) -> None:
    params = {"height": 128, "width": 300, "left": 0, "top": 0, "right": 10, "bottom": 0}
    params.update(overrides)
    image = np.zeros((int(params.pop("height")), int(params.pop("width")), 3), np.uint8)
    creativity = params.pop("creativity", 0.5)
    sides = {name: int(value) for name, value in params.items()}
    filler = ConstantFiller((0, 0, 0))
    with pytest.raises(InvalidParameter, match=message) as caught:
        outpaint(image, **sides, filler=filler, creativity=creativity, seed=0)
    assert caught.value.error_code == "invalid_parameter"
    assert filler.calls == []


def test_rejects_pixels_that_are_not_an_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        outpaint(
            np.zeros((128, 128), np.uint8),
            left=1,
            top=0,
            right=0,
            bottom=0,
            filler=ConstantFiller((0, 0, 0)),
            creativity=0,
            seed=0,
        )


def test_the_subject_is_excluded_from_the_fill_sources() -> None:
    image = np.full((200, 200, 3), 128, np.uint8)
    filler = ConstantFiller((0, 0, 0))
    outpaint(
        image,
        left=50,
        top=10,
        right=0,
        bottom=0,
        filler=filler,
        creativity=0,
        seed=0,
        segmenter=DiscSegmenter(),
    )
    (exclude,) = filler.excluded
    assert exclude is not None and exclude.shape == (210, 250)
    disc = np.zeros((210, 250), bool)
    disc[10:, 50:] = DiscSegmenter().mask(image) > 0
    # The whole subject and a rim round it, nothing in the new border, the corners left free.
    assert exclude[disc].all() and exclude.sum() > disc.sum()
    assert not exclude[:10].any() and not exclude[:, :50].any()
    assert not exclude[10:40, 50:80].any()
    # Without a segmenter nothing is excluded.
    filler = ConstantFiller((0, 0, 0))
    outpaint(image, left=50, top=0, right=0, bottom=0, filler=filler, creativity=0, seed=0)
    assert filler.excluded == [None]


def test_clone_score_finds_a_pasted_eye() -> None:
    """The measure the next test relies on: an eye pasted into the border, under a colour shift
    and a little blur, scores as a copy; the flat border around it does not."""
    image = data.chelsea()
    border = chelsea_border(image)
    canvas = np.full((*border.shape, 3), 120, np.uint8)
    canvas[~border] = image.reshape(-1, 3)
    y, x, side = CHELSEA_FEATURES["left eye"]
    eye = cv2.GaussianBlur(image[y : y + side, x : x + side], (0, 0), 0.7).astype(np.int16)
    canvas[150:198, 20:68] = np.clip(eye + 25, 0, 255)
    assert clone_score(canvas, border, CHELSEA_FEATURES["left eye"]) > 0.9
    assert clone_score(canvas, border, CHELSEA_FEATURES["nose"]) < 0.6


@pytest.mark.slow
def test_a_real_photo_is_grown_without_copies_of_its_subject() -> None:
    """skimage's cat grown by 200 px left and right and 100 px on top: PatchMatch alone filled
    the border with copies of its eyes (score 0.99); with the segmenter, none of the face, at
    either end of the creativity range, and creativity still changes the border."""
    image = data.chelsea()
    border = chelsea_border(image)
    segmenter = create_segmenter("u2netp", threads=1)
    outs = {}
    for creativity in (0.0, 1.0):
        out = outpaint(
            image,
            **CHELSEA_SIDES,
            filler=PatchMatchFiller(),
            creativity=creativity,
            seed=5,
            segmenter=segmenter,
        )
        assert out.shape == (*border.shape, 3)
        assert np.array_equal(out[~border].reshape(image.shape), image)
        scores = {name: clone_score(out, border, patch) for name, patch in CHELSEA_FEATURES.items()}
        assert max(scores.values()) < 0.6, (creativity, scores)
        # Still a continuation of the photo: the border's colours are the scene's, not flat.
        assert out[border].std(axis=0).min() > 10
        outs[creativity] = out.astype(np.float32)
    change = float(np.abs(outs[0.0] - outs[1.0])[border].mean())
    assert change > 5, change

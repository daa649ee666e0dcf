"""Try-on engines on a drawn person and drawn garments whose geometry is known.

The person (384x256) stands front-facing on a textured teal backdrop: a skin-tone head with
hair, a neck, a light shirt over a torso that narrows to a waist at row 176 and widens to hips
at row 214, a darker fold band across the chest, arms hanging with a gap beside the torso, dark
jeans whose legs part at row 226, and shoes. The garments are flat shapes on white: a red
T-shirt with sleeves, blue trousers, a green dress. Coverage is measured as the pixels of the
garment's hue and saturation against the drawn body parts the mode should cover.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from retouch.engines.base import Segmenter
from retouch.engines.segmenter import create_segmenter
from retouch.engines.tryon import (
    DiffusionTryOn,
    GeometricTryOn,
    body_geometry,
    clothing_region,
    colour_name,
    create_try_on_engine,
    find_body,
)
from retouch.errors import UnknownForeground
from tests.utils.diffusion import build_tiny_pipeline
from tests.utils.engines import MaskSegmenter
from tests.utils.images import iou
from tests.utils.people import (
    CROTCH,
    FOLD,
    GARMENTS,
    MODE_OF,
    SHOULDER,
    SIZE,
    SOLES,
    WAIST,
    Scene,
    expected_cover,
    garment_photo,
    garment_rgba,
    person_scene,
    untouched_zone,
    wearing,
)


@pytest.fixture(scope="module")
def scene() -> Scene:
    return person_scene()


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return create_segmenter("u2netp", threads=1)


@pytest.fixture(scope="module")
def dressed(scene: Scene, segmenter: Segmenter) -> dict[str, np.ndarray]:
    engine = GeometricTryOn(segmenter)
    return {
        name: engine.dress(scene.rgb, garment_rgba(name), mode=MODE_OF[name], seed=0)
        for name in GARMENTS
    }


def test_landmarks_of_the_drawn_silhouette(scene: Scene) -> None:
    body = body_geometry(scene.mask)
    assert body is not None
    assert body.top == 28
    assert abs(body.shoulder - SHOULDER) <= 2
    assert abs(body.waist - WAIST) <= 4
    assert abs(body.crotch - CROTCH) <= 2
    assert body.ankle == SOLES - round(0.04 * (SOLES - 28))
    # Below the shoulders the trunk is the torso, not the arms hanging beside it.
    assert (body.left[150], body.right[150]) == (86, 171)
    assert body.left[300] < 110 and body.right[300] > 150  # both legs and the gap between


def test_landmarks_fall_back_to_proportions() -> None:
    """A figure in a long skirt (no gap between the legs) cut off at the neck: the shoulders
    are its top and the crotch and waist come from the canon figure."""
    mask = np.zeros((300, 200), bool)
    mask[0:290, 40:160] = True
    body = body_geometry(mask)
    assert body is not None
    assert body.shoulder == 0
    assert body.crotch == round(0.48 * 290)
    assert body.waist == round(0.68 * body.crotch)
    assert (body.left[200], body.right[200]) == (40, 160)
    assert body_geometry(np.zeros((10, 10), bool)) is None


def test_specks_do_not_derail_the_trunk(scene: Scene) -> None:
    """Holes like the segmenter's at the top of the legs' gap: one just off the centre column
    (which would halve the trunk's run and drag its centre onto a leg) and one on it."""
    mask = scene.mask.copy()
    mask[CROTCH - 6, 129] = False
    mask[CROTCH - 4, 128] = False
    mask[160, 110:113] = False
    body = body_geometry(mask)
    assert body is not None
    assert abs(body.crotch - CROTCH) <= 2
    assert body.left[300] < 110 and body.right[300] > 150


def test_a_figure_cut_off_at_the_knees(scene: Scene) -> None:
    """The ankles are estimated below the frame (from the head-to-shoulder distance), and the
    trousers still cover the legs down to it."""
    rgb, mask = np.ascontiguousarray(scene.rgb[:300]), scene.mask[:300]
    body = body_geometry(mask)
    assert body is not None and body.ankle > 300
    out = GeometricTryOn(MaskSegmenter(mask)).dress(
        rgb, garment_rgba("trousers"), mode="lower", seed=0
    )
    legs = scene.parts["legs"][:300] & (np.arange(300)[:, None] >= CROTCH)
    assert wearing(out, "trousers")[legs].mean() > 0.9


@pytest.mark.slow
def test_landmarks_of_the_segmented_person(scene: Scene, segmenter: Segmenter) -> None:
    alpha, mask, body = find_body(segmenter, scene.rgb)
    assert iou(mask, scene.mask) >= 0.97
    assert abs(body.shoulder - SHOULDER) <= 2
    assert abs(body.waist - WAIST) <= 4
    # u2netp closes the top of the narrow gap between the thighs.
    assert CROTCH <= body.crotch <= CROTCH + 16


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GARMENTS))
def test_garment_covers_its_body_region(
    scene: Scene, dressed: dict[str, np.ndarray], name: str
) -> None:
    out = dressed[name]
    assert out.shape == scene.rgb.shape and out.dtype == np.uint8
    assert not wearing(scene.rgb, name).any()
    assert iou(wearing(out, name), expected_cover(scene, name)) >= 0.7


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GARMENTS))
def test_backdrop_and_head_are_untouched(
    scene: Scene, dressed: dict[str, np.ndarray], name: str
) -> None:
    out = dressed[name]
    keep = untouched_zone(scene) | scene.parts["head"]
    assert np.array_equal(out[keep], scene.rgb[keep])


@pytest.mark.slow
def test_shading_carries_over(scene: Scene, dressed: dict[str, np.ndarray]) -> None:
    """The fold band across the chest stays darker than the shirt above and below it."""
    luminance = cv2.cvtColor(dressed["tshirt"], cv2.COLOR_RGB2GRAY).astype(np.float32)
    cols = slice(100, 156)
    band = luminance[FOLD[0] + 2 : FOLD[1] - 2, cols].mean()
    around = np.r_[luminance[FOLD[0] - 12 : FOLD[0] - 2, cols], luminance[FOLD[1] + 2 : 162, cols]]
    assert band < 0.85 * around.mean()


def test_stubbed_person_is_dressed_by_the_drawn_mask(scene: Scene) -> None:
    """With the true mask as the segmentation: the same contract, no model needed."""
    engine = GeometricTryOn(MaskSegmenter(scene.mask))
    out = engine.dress(scene.rgb, garment_rgba("tshirt"), mode="upper", seed=0)
    outside = ~scene.mask | (np.arange(SIZE[0])[:, None] < SHOULDER)
    assert np.array_equal(out[outside], scene.rgb[outside])
    assert iou(wearing(out, "tshirt"), expected_cover(scene, "tshirt")) >= 0.7
    assert np.array_equal(
        engine.dress(scene.rgb, garment_rgba("tshirt"), mode="upper", seed=9), out
    )


def test_nobody_to_dress_is_unknown_foreground() -> None:
    engine = GeometricTryOn(MaskSegmenter(np.zeros(SIZE, bool)))
    with pytest.raises(UnknownForeground, match="No person"):
        engine.dress(np.zeros((*SIZE, 3), np.uint8), garment_rgba("tshirt"), mode="upper", seed=0)


@pytest.mark.parametrize(
    ("person", "garment", "mode", "message"),
    [
        (np.zeros((*SIZE, 4), np.uint8), garment_rgba("tshirt"), "upper", "person must be"),
        (np.zeros((*SIZE, 3), np.uint8), garment_photo("tshirt")[0], "upper", "garment must be"),
        (np.zeros((*SIZE, 3), np.uint8), garment_rgba("tshirt"), "auto", "mode must be"),
        (np.zeros((*SIZE, 3), np.uint8), np.zeros((8, 8, 4), np.uint8), "upper", "no opaque"),
    ],
    ids=["rgba-person", "rgb-garment", "auto-mode", "empty-garment"],
)
def test_bad_arguments_are_caller_bugs(
    person: np.ndarray, garment: np.ndarray, mode: str, message: str
) -> None:
    engine = GeometricTryOn(MaskSegmenter(np.ones(SIZE, bool)))
    with pytest.raises(ValueError, match=message):
        engine.dress(person, garment, mode=mode, seed=0)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 30, 35), "red"),
        ((40, 70, 190), "blue"),
        ((40, 160, 60), "green"),
        ((245, 245, 240), "white"),
        ((20, 20, 25), "black"),
        ((128, 128, 128), "grey"),
        ((120, 70, 30), "brown"),
        ((230, 120, 180), "pink"),
    ],
)
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(rgb) == name


def test_registry() -> None:
    segmenter = MaskSegmenter(np.ones(SIZE, bool))
    engine = create_try_on_engine("geometric", segmenter=segmenter, threads=1)
    assert isinstance(engine, GeometricTryOn) and engine.segmenter is segmenter
    with pytest.raises(ValueError, match="unknown try-on engine 'vton'; known: diffusion, geom"):
        create_try_on_engine("vton", segmenter=segmenter, threads=1)
    with pytest.raises(ValueError, match="needs a weights path"):
        create_try_on_engine("diffusion", segmenter=segmenter, threads=1)


@pytest.mark.slow
def test_diffusion_repaints_only_the_clothing_region(scene: Scene, tmp_path: Path) -> None:
    """On a tiny random pipeline (its pictures are noise): the plumbing, not the picture."""
    build_tiny_pipeline(tmp_path)
    segmenter = MaskSegmenter(scene.mask)
    engine = create_try_on_engine(
        "diffusion", segmenter=segmenter, threads=1, weights_path=tmp_path, steps=2
    )
    assert isinstance(engine, DiffusionTryOn)
    body = body_geometry(scene.mask)
    assert body is not None
    for name, mode in MODE_OF.items():
        region = clothing_region(scene.mask, body, mode)
        out = engine.dress(scene.rgb, garment_rgba(name), mode=mode, seed=1)
        assert out.shape == scene.rgb.shape and out.dtype == np.uint8
        assert np.array_equal(out[~region], scene.rgb[~region])
        assert not np.array_equal(out[region], scene.rgb[region])
        assert not region[: body.shoulder].any() and not (region & ~scene.mask).any()
    again = engine.dress(scene.rgb, garment_rgba("dress"), mode="full", seed=1)
    assert np.array_equal(again, out)

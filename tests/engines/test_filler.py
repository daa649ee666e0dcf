"""The hole fillers' contract (known pixels kept, holes filled, seeds reproducible) and registry.

How well PatchMatch continues a texture is measured through outpaint, in tests/ops.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from retouch.engines.base import Filler
from retouch.engines.filler import (
    DEFAULT_FILLER,
    PatchMatchFiller,
    TeleaFiller,
    create_filler,
)


def smooth_image(h: int, w: int, *, seed: int = 0) -> np.ndarray:
    """Soft colour blobs with a little grain: a photo-like background with no sharp structure."""
    rng = np.random.default_rng(seed)
    blobs = cv2.resize(
        rng.integers(40, 220, (4, 5, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
    )
    return np.clip(blobs + rng.normal(0, 3, blobs.shape), 0, 255).astype(np.uint8)


def hole(h: int, w: int) -> np.ndarray:
    """A disc and a strip along the right edge: an inpainting and an outpainting hole."""
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 3, h // 2), min(h, w) // 6, 1, -1)
    mask[:, -w // 5 :] = 1
    return mask.astype(bool)


def test_unknown_filler_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="diffusion, patchmatch, telea"):
        create_filler("lama", threads=1)


def test_diffusion_filler_needs_a_weights_path() -> None:
    with pytest.raises(ValueError, match="weights path"):
        create_filler("diffusion", threads=1)


def test_registry_builds_the_cpu_fillers() -> None:
    assert DEFAULT_FILLER == "patchmatch"
    assert isinstance(create_filler("patchmatch", threads=1), PatchMatchFiller)
    assert isinstance(create_filler("telea", threads=1), TeleaFiller)


@pytest.mark.parametrize("filler", [PatchMatchFiller(), TeleaFiller()], ids=["patchmatch", "telea"])
def test_fills_the_hole_and_keeps_everything_else(filler: Filler) -> None:
    image = smooth_image(120, 160)
    mask = hole(120, 160)
    holed = image.copy()
    holed[mask] = 0
    out = filler.fill(holed, mask, creativity=0, seed=0)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    # The hole now looks like its surroundings (soft blobs), not like the black it held.
    error = np.abs(out.astype(np.float32) - image)[mask].mean()
    assert error < 20, error


@pytest.mark.parametrize("filler", [PatchMatchFiller(), TeleaFiller()], ids=["patchmatch", "telea"])
def test_no_hole_returns_a_copy(filler: Filler) -> None:
    image = smooth_image(64, 64)
    out = filler.fill(image, np.zeros((64, 64), bool), creativity=1, seed=0)
    assert np.array_equal(out, image) and out is not image


@pytest.mark.slow
def test_patchmatch_seed_and_creativity() -> None:
    image = smooth_image(96, 128)
    mask = hole(96, 128)
    filler = PatchMatchFiller()
    runs = {
        (creativity, seed): filler.fill(image, mask, creativity=creativity, seed=seed)
        for creativity, seed in [(0, 1), (0, 2), (1, 1)]
    }
    assert np.array_equal(filler.fill(image, mask, creativity=1, seed=1), runs[1, 1])
    assert np.array_equal(filler.fill(image, mask, creativity=0, seed=1), runs[0, 1])

    def difference(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.float32) - b)[mask].mean())

    assert difference(runs[0, 1], runs[0, 2]) > 0.1
    assert difference(runs[0, 1], runs[1, 1]) > difference(runs[0, 1], runs[0, 2])


@pytest.mark.slow
def test_patchmatch_is_reproducible_across_threads() -> None:
    """The library's generator is per thread and never reseeded by us, so concurrent fills of
    the same request give what a lone fill gives."""
    image = smooth_image(96, 128)
    mask = hole(96, 128)
    filler = PatchMatchFiller()
    alone = filler.fill(image, mask, creativity=0.5, seed=7)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda s: filler.fill(image, mask, creativity=0.5, seed=s), [7, 8, 7, 8])
        )
    assert np.array_equal(results[0], alone) and np.array_equal(results[2], alone)
    assert np.array_equal(results[1], results[3])


@pytest.mark.slow
def test_large_fills_run_at_reduced_resolution() -> None:
    """A small work budget forces the reduced-resolution path (here about half size): the fill
    is upsampled, the known pixels are still exact, and large structure (two colour fields)
    still carries on."""
    rng = np.random.default_rng(0)
    image = np.empty((200, 240, 3), np.float32)
    image[:100], image[100:] = (200, 120, 60), (50, 90, 180)
    image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    mask = np.ones((200, 240), bool)
    mask[50:150, 60:180] = False
    holed = image.copy()
    holed[mask] = 0
    out = PatchMatchFiller(max_work_pixels=25_000).fill(holed, mask, creativity=0, seed=0)
    assert np.array_equal(out[~mask], image[~mask])
    error = np.abs(out.astype(np.float32) - image)[mask].mean()
    assert error < 10, error


@pytest.mark.parametrize(
    ("rgb", "mask", "creativity", "message"),
    [
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), bool), 0, "rgb must be uint8 HxWx3"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), bool), 0, "rgb must be uint8"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), bool), 0, "mask must be bool"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), 0, "mask must be bool"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool), 1.5, "creativity"),
    ],
)
def test_rejects_bad_inputs(
    rgb: np.ndarray, mask: np.ndarray, creativity: float, message: str
) -> None:
    for filler in (PatchMatchFiller(), TeleaFiller()):
        with pytest.raises(ValueError, match=message):
            filler.fill(rgb, mask, creativity=creativity, seed=0)


def test_patchmatch_work_budget_must_be_usable() -> None:
    with pytest.raises(ValueError, match="max_work_pixels"):
        PatchMatchFiller(max_work_pixels=10_000)


def test_exclude_must_match_the_image() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((8, 8), bool)
    for filler in (PatchMatchFiller(), TeleaFiller()):
        with pytest.raises(ValueError, match="exclude must be bool"):
            filler.fill(image, mask, creativity=0, seed=0, exclude=np.zeros((8, 9), bool))


def subject_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey grain with a red checkered square against the right edge, the hole beyond it: the
    square's patches are the best match for the hole's rows it touches."""
    image = smooth_image(120, 200, seed=3)
    image[...] = image.mean(axis=2, keepdims=True).astype(np.uint8)
    subject = np.zeros((120, 200), bool)
    subject[30:90, 100:150] = True
    checks = (np.indices((60, 50)).sum(axis=0) // 6) % 2
    image[30:90, 100:150] = np.where(checks[..., None], (220, 30, 30), (120, 10, 10))
    mask = np.zeros((120, 200), bool)
    mask[:, 150:] = True
    return image, mask, subject


def red(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return (r - np.maximum(g, b)) > 40


@pytest.mark.slow
@pytest.mark.parametrize("creativity", [0.0, 1.0])
def test_patchmatch_copies_nothing_from_the_excluded_pixels(creativity: float) -> None:
    image, mask, subject = subject_scene()
    filler = PatchMatchFiller()
    plain = filler.fill(image, mask, creativity=creativity, seed=0)
    assert red(plain[mask]).mean() > 0.05  # the square is continued into the hole...
    out = filler.fill(image, mask, creativity=creativity, seed=0, exclude=subject)
    assert np.array_equal(out[~mask], image[~mask])
    assert not red(out[mask]).any()  # ...unless it is excluded: then only the grey is
    error = np.abs(out[mask].astype(np.float32) - image[~subject & ~mask].mean(axis=0)).mean()
    assert error < 20, error


@pytest.mark.slow
def test_an_exclusion_leaving_nothing_to_copy_is_dropped() -> None:
    image, mask, _ = subject_scene()
    filler = PatchMatchFiller()
    everything = filler.fill(image, mask, creativity=0, seed=0, exclude=~mask)
    assert np.array_equal(everything, filler.fill(image, mask, creativity=0, seed=0))

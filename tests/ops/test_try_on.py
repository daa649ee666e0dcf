"""The try-on operation: garment extraction and its charge rule, garment modes, and the whole
operation on the drawn person and garments of ``tests.engines.test_tryon``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.engines.base import Segmenter
from retouch.engines.segmenter import create_segmenter
from retouch.engines.tryon import GeometricTryOn
from retouch.errors import InvalidParameter, UnknownForeground
from retouch.ops.try_on import (
    extract_garment,
    garment_as_is,
    needs_extraction,
    resolve_mode,
    try_on,
)
from tests.utils.engines import FixedPose, MaskSegmenter
from tests.utils.images import iou
from tests.utils.people import (
    Scene,
    drawn_pose,
    expected_cover,
    garment_photo,
    garment_rgba,
    person_scene,
    untouched_zone,
    wearing,
)


class RecordingEngine:
    """Returns the person unchanged and keeps what it was asked to put on."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, str]] = []

    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        self.calls.append((garment, mode))
        return person.copy()


def _shape(points: list[tuple[int, int]], size: tuple[int, int] = (300, 260)) -> np.ndarray:
    """An RGBA garment of one flat colour with the polygon's silhouette."""
    mask = np.zeros(size, np.uint8)
    cv2.fillPoly(mask, [np.array(points, np.int32)], 255)
    return np.dstack([np.full((*size, 3), 90, np.uint8), mask])


@pytest.fixture(scope="module")
def scene() -> Scene:
    return person_scene()


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return create_segmenter("u2netp", threads=1)


def test_extraction_is_needed_exactly_without_transparency() -> None:
    rgb, mask = garment_photo("tshirt")
    assert needs_extraction(rgb)
    assert needs_extraction(np.dstack([rgb, np.full(mask.shape, 255, np.uint8)]))
    assert not needs_extraction(garment_rgba("tshirt"))


@pytest.mark.parametrize(
    ("name", "mode"), [("tshirt", "upper"), ("trousers", "lower"), ("dress", "full")]
)
def test_auto_mode_from_the_garment_shape(name: str, mode: str) -> None:
    assert resolve_mode(garment_rgba(name), "auto") == mode


def test_auto_mode_for_skirts_and_jumpsuits() -> None:
    skirt = _shape([(90, 20), (170, 20), (240, 240), (20, 240)])
    assert resolve_mode(skirt, "auto") == "lower"
    jumpsuit = _shape(
        [(100, 5), (160, 5), (165, 290), (140, 290), (130, 150), (120, 290), (95, 290)]
    )
    assert resolve_mode(jumpsuit, "auto") == "full"


def test_explicit_modes_are_kept_and_others_refused() -> None:
    trousers = garment_rgba("trousers")
    assert [resolve_mode(trousers, m) for m in ("upper", "lower", "full")] == [
        "upper",
        "lower",
        "full",
    ]
    with pytest.raises(InvalidParameter, match="garment_mode must be one of auto, upper"):
        resolve_mode(trousers, "top")
    with pytest.raises(UnknownForeground, match="fully transparent"):
        resolve_mode(np.zeros((64, 64, 4), np.uint8), "upper")


def test_garment_as_is_keys_out_a_flat_backdrop() -> None:
    rgb, mask = garment_photo("dress")
    keyed = garment_as_is(rgb)
    assert keyed.shape == (*mask.shape, 4)
    assert np.array_equal(keyed[..., :3], rgb)
    assert np.array_equal(keyed[..., 3] >= 128, mask)


def test_garment_as_is_keeps_transparency_and_busy_photos() -> None:
    rgba = garment_rgba("trousers")
    assert np.array_equal(garment_as_is(rgba), rgba)
    busy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert (garment_as_is(busy)[..., 3] == 255).all()


def test_the_garment_is_extracted_only_when_asked_and_needed(scene: Scene) -> None:
    rgb, mask = garment_photo("tshirt")
    garment_mask = MaskSegmenter(mask)
    engine = RecordingEngine()
    common = {"engine": engine, "mode": "auto", "remove_background": False, "seed": 0}
    out = try_on(scene.rgb, rgb, segmenter=garment_mask, preprocess_garment=True, **common)
    assert np.array_equal(out, scene.rgb)
    assert garment_mask.started.is_set()  # extracted by the segmenter
    garment, mode = engine.calls[-1]
    assert mode == "upper" and np.array_equal(garment[..., 3] > 127, mask)

    unused = MaskSegmenter(mask)
    try_on(scene.rgb, rgb, segmenter=unused, preprocess_garment=False, **common)
    assert not unused.started.is_set()  # keyed off the white backdrop instead
    try_on(scene.rgb, garment_rgba("tshirt"), segmenter=unused, preprocess_garment=True, **common)
    assert not unused.started.is_set()  # already has transparency


def test_a_transparent_person_is_flattened_onto_white(scene: Scene) -> None:
    person = np.dstack([scene.rgb, np.where(scene.mask, 255, 0).astype(np.uint8)])
    out = try_on(
        person,
        garment_rgba("dress"),
        engine=RecordingEngine(),
        segmenter=MaskSegmenter(scene.mask),
        mode="full",
        preprocess_garment=True,
        remove_background=False,
        seed=0,
    )
    assert out.shape == scene.rgb.shape
    assert (out[~scene.mask] == 255).all() and np.array_equal(
        out[scene.mask], scene.rgb[scene.mask]
    )


@pytest.mark.slow
def test_the_segmenter_extracts_a_garment_photo(segmenter: Segmenter) -> None:
    rgb, mask = garment_photo("tshirt")
    garment = extract_garment(rgb, segmenter=segmenter)
    assert garment.shape == (*mask.shape, 4)
    assert iou(garment[..., 3] >= 128, mask) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("preprocess", [True, False], ids=["extracted", "keyed"])
@pytest.mark.parametrize("name", ["tshirt", "trousers", "dress"])
def test_try_on_end_to_end(scene: Scene, segmenter: Segmenter, name: str, preprocess: bool) -> None:
    """Garment photos on white, ``auto`` mode, the real segmenter for person and garment."""
    out = try_on(
        scene.rgb,
        garment_photo(name)[0],
        engine=GeometricTryOn(segmenter, FixedPose(drawn_pose())),
        segmenter=segmenter,
        mode="auto",
        preprocess_garment=preprocess,
        remove_background=False,
        seed=0,
    )
    assert out.shape == scene.rgb.shape and out.dtype == np.uint8
    assert iou(wearing(out, name), expected_cover(scene, name)) >= 0.7
    keep = untouched_zone(scene) | scene.parts["head"]
    assert np.array_equal(out[keep], scene.rgb[keep])


@pytest.mark.slow
def test_remove_background_cuts_out_the_dressed_person(scene: Scene, segmenter: Segmenter) -> None:
    out = try_on(
        scene.rgb,
        garment_rgba("tshirt"),
        engine=GeometricTryOn(segmenter, FixedPose(drawn_pose())),
        segmenter=segmenter,
        mode="upper",
        preprocess_garment=True,
        remove_background=True,
        seed=0,
    )
    assert out.shape == (*scene.rgb.shape[:2], 4)
    assert iou(out[..., 3] >= 128, scene.mask) >= 0.97
    backdrop = out[untouched_zone(scene), 3]
    # Transparent but for the segmenter's faint haze in the corners the body makes.
    assert (backdrop == 0).mean() > 0.99 and backdrop.max() < 64
    assert iou(wearing(out[..., :3], "tshirt"), expected_cover(scene, "tshirt")) >= 0.7

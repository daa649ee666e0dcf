"""Overlapping tiles: geometry, exact blending weights, and no seams for local functions."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from retouch.ops.tiling import process_tiled, tile_starts


def resize_by(scale: int, interpolation: int) -> Callable[[np.ndarray], np.ndarray]:
    def fn(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return cv2.resize(image, (w * scale, h * scale), interpolation=interpolation)

    return fn


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(100, 64, 8), (129, 128, 16), (225, 128, 32), (1000, 128, 16), (64, 64, 8)],
)
def test_tiles_cover_the_length_flush_with_both_edges(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == max(0, length - tile)
    assert starts == sorted(set(starts))
    shared = [a + tile - b for a, b in zip(starts, starts[1:], strict=False)]
    assert all(s >= overlap for s in shared), shared
    # The fewest tiles: one fewer could not cover the length with that overlap.
    assert len(starts) == 1 or (len(starts) - 1) * (tile - overlap) + overlap < length


def test_an_image_that_fits_is_passed_whole() -> None:
    calls: list[tuple[int, ...]] = []

    def fn(image: np.ndarray) -> np.ndarray:
        calls.append(image.shape)
        return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)

    image = np.zeros((64, 50, 3), np.uint8)
    assert process_tiled(image, fn, scale=2, tile=64, overlap=8).shape == (128, 100, 3)
    assert calls == [(64, 50, 3)]


@pytest.mark.parametrize("shape", [(200, 150, 3), (150, 333), (70, 400, 4)])
def test_a_pointwise_function_is_reproduced_exactly(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    calls: list[tuple[int, ...]] = []
    nearest = resize_by(3, cv2.INTER_NEAREST)

    def fn(tile: np.ndarray) -> np.ndarray:
        calls.append(tile.shape)
        return nearest(tile)

    out = process_tiled(image, fn, scale=3, tile=64, overlap=8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, nearest(image))
    assert len(calls) > 1 and all(max(s[:2]) <= 64 for s in calls)


def test_weights_sum_to_one_even_where_three_tiles_overlap() -> None:
    # 225 px in 128 px tiles with 32 px overlap: three tiles, the first and last overlapping.
    image = np.zeros((225, 300), np.float32)

    def ones(tile: np.ndarray) -> np.ndarray:
        return np.ones((tile.shape[0] * 2, tile.shape[1] * 2), np.float32)

    out = process_tiled(image, ones, scale=2, tile=128, overlap=32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 1, atol=1e-6)


def test_a_local_filter_shows_no_seam() -> None:
    # Bicubic reads 2 px around each pixel, so tile borders differ from the whole-image result;
    # the cross-fade must hide that.
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (180, 220, 3), dtype=np.uint8), (0, 0), 1.0)
    cubic = resize_by(2, cv2.INTER_CUBIC)
    tiled = process_tiled(image, cubic, scale=2, tile=64, overlap=8).astype(np.int16)
    diff = np.abs(tiled - cubic(image))
    assert diff.max() <= 1, diff.max()


def test_rejects_bad_geometry_and_wrong_output_size() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="overlap"):
        process_tiled(image, resize_by(2, cv2.INTER_NEAREST), scale=2, tile=16, overlap=8)
    with pytest.raises(ValueError, match="fn returned"):
        process_tiled(image, resize_by(3, cv2.INTER_NEAREST), scale=2, tile=64, overlap=8)

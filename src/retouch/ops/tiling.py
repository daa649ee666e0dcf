"""Run an image-to-image function tile by tile so memory follows the tile, not the image.

A network's activations are tens of channels at the input's resolution: a whole 1500x1500 image
through an upscaler would need gigabytes, a 192 px tile a few dozen megabytes. Tiles overlap and
are cross-faded in the overlap, because a convolutional network sees zero padding at a tile's
border and its output there differs slightly from what it gives with real neighbours; a fade
hides that where a hard cut would leave a visible seam.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the fewest tiles of ``tile`` px that cover ``length`` px with at least
    ``overlap`` px shared by neighbours.

    The starts are spread evenly, so the first tile is flush with one edge and the last with the
    other (edge tiles are moved inward rather than padded) and every overlap is about the same.
    """
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    stride = (length - tile) / (count - 1)
    return [round(i * stride) for i in range(count)]


def _weights(starts: list[int], size: int, length: int, fade: int) -> list[np.ndarray]:
    """Per tile, its share of each output pixel along one axis; the shares sum to 1 everywhere.

    Each tile fades in linearly over ``fade`` px on every side where it has a neighbour (never at
    the image's edge), then all profiles are divided by their sum. Dividing keeps the sum exact
    even where tiles crowded in by the edge shift overlap by more than ``fade`` or three overlap.
    """
    ramp = (np.arange(fade, dtype=np.float32) + 0.5) / fade
    profiles = []
    total = np.zeros(length, np.float32)
    for i, start in enumerate(starts):
        profile = np.ones(size, np.float32)
        if i > 0:
            profile[:fade] = ramp
        if i < len(starts) - 1:
            profile[size - fade :] = np.minimum(profile[size - fade :], ramp[::-1])
        total[start : start + size] += profile
        profiles.append(profile)
    return [p / total[s : s + size] for p, s in zip(profiles, starts, strict=True)]


def process_tiled(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    scale: int,
    tile: int,
    overlap: int,
) -> np.ndarray:
    """``fn`` applied to ``image`` (HxW or HxWxC) in overlapping tiles of at most ``tile`` px.

    ``fn`` maps an hxw(xC) array to an (h*scale)x(w*scale)(xC') one of any dtype, the same for
    every tile; the result has that dtype (integer results are rounded). An image that fits in
    one tile is passed to ``fn`` whole. Pixels are blended in bands of one tile row, so besides
    the result only one band of float32 output is held, never the whole image in float.
    """
    if scale < 1 or overlap < 1 or tile <= 2 * overlap:
        raise ValueError(
            f"need scale >= 1 and tile > 2 * overlap >= 2, got {scale=}, {tile=}, {overlap=}"
        )
    h, w = image.shape[:2]
    if h <= tile and w <= tile:
        return fn(image)
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    fade = overlap * scale
    wy = _weights([y * scale for y in ys], th * scale, h * scale, fade)
    wx = _weights([x * scale for x in xs], tw * scale, w * scale, fade)

    out: np.ndarray | None = None
    band = np.empty(0, np.float32)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            result = fn(image[y : y + th, x : x + tw])
            if result.shape[:2] != (th * scale, tw * scale):
                raise ValueError(
                    f"fn returned {result.shape[:2]} for a {th}x{tw} tile at scale {scale}"
                )
            if out is None:
                out = np.empty((h * scale, w * scale, *result.shape[2:]), result.dtype)
                band = np.zeros((th * scale, w * scale, *result.shape[2:]), np.float32)
            extra = (1,) * (result.ndim - 2)
            weight = wy[i].reshape(-1, 1, *extra) * wx[j].reshape(1, -1, *extra)
            band[:, x * scale : (x + tw) * scale] += weight * result
        assert out is not None
        # Rows above the next tile row's start get nothing more: finish them and slide the band
        # up so it starts where the next tile row does.
        done = (ys[i + 1] - y) * scale if i + 1 < len(ys) else th * scale
        _store(out[y * scale : y * scale + done], band[:done])
        band[: band.shape[0] - done] = band[done:]
        band[band.shape[0] - done :] = 0
    assert out is not None
    return out


def _store(target: np.ndarray, values: np.ndarray) -> None:
    if np.issubdtype(target.dtype, np.integer):
        info = np.iinfo(target.dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    target[...] = values

"""Synthetic product shots for benchmarks: a shaded object over varied backgrounds.

Benchmarks need inputs that look like what the endpoint is for (one subject, a soft edge, a
photo-like background) without shipping image files or downloading any. Every shot also comes with
its true mask, so a benchmark can report quality next to speed. Deterministic for a given seed.
Deliberately independent of ``tests/``: benchmarks must not break when test helpers change.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

Shape = tuple[int, int]  # (height, width)
Background = Callable[[Shape, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class ProductShot:
    name: str
    jpeg: bytes
    mask: np.ndarray  # bool HxW, True on the product


def _bottle(shape: Shape) -> np.ndarray:
    h, w = shape
    mask = np.zeros(shape, np.uint8)
    cx, cy, s = w // 2, h // 2, h / 384

    def px(v: float) -> int:
        return round(v * s)

    cv2.rectangle(mask, (cx - px(70), cy - px(40)), (cx + px(70), h - px(50)), 1, -1)
    cv2.ellipse(mask, (cx, cy - px(40)), (px(70), px(45)), 0, 180, 360, 1, -1)
    cv2.rectangle(mask, (cx - px(22), cy - px(130)), (cx + px(22), cy - px(75)), 1, -1)
    return mask.astype(bool)


def _box(shape: Shape) -> np.ndarray:
    h, w = shape
    mask = np.zeros(shape, np.uint8)
    pts = np.array([[w * 0.30, h * 0.30], [w * 0.62, h * 0.22], [w * 0.72, h * 0.35]])
    pts = np.vstack([pts, [[w * 0.72, h * 0.85], [w * 0.40, h * 0.92], [w * 0.30, h * 0.80]]])
    cv2.fillPoly(mask, [pts.astype(np.int32)], 1)
    return mask.astype(bool)


def _mug(shape: Shape) -> np.ndarray:
    h, w = shape
    mask = np.zeros(shape, np.uint8)
    cv2.rectangle(mask, (int(w * 0.35), int(h * 0.30)), (int(w * 0.60), int(h * 0.85)), 1, -1)
    cv2.ellipse(
        mask, (int(w * 0.60), int(h * 0.55)), (int(w * 0.08), int(h * 0.14)), 0, 0, 360, 1, 18
    )
    return mask.astype(bool)


PRODUCTS: dict[str, Callable[[Shape], np.ndarray]] = {"bottle": _bottle, "box": _box, "mug": _mug}


def _flat(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    return np.full((*shape, 3), (236, 236, 232), np.float32)


def _gradient(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 1, shape[0], dtype=np.float32)[:, None, None]
    top, bottom = np.array([250, 215, 170], np.float32), np.array([150, 110, 80], np.float32)
    return (top * (1 - t) + bottom * t) * np.ones((1, shape[1], 1), np.float32)


def _grain(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    grain = cv2.GaussianBlur(rng.normal(0, 1, (*shape, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(175 + 60 * grain, 0, 255)


def _blobs(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Photo-like out-of-focus background: large soft colour blobs."""
    img = np.full((*shape, 3), (120, 140, 110), np.float32)
    for _ in range(20):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(60, 280)), int(rng.integers(60, 280)))
        colour = tuple(float(c) for c in rng.integers(60, 230, 3))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return cv2.GaussianBlur(img, (0, 0), 24)


BACKGROUNDS: dict[str, Background] = {
    "flat": _flat,
    "gradient": _gradient,
    "grain": _grain,
    "blobs": _blobs,
}


def _paint(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Side-lit colours with a label band and fine texture over the product's bounding box."""
    h, w = mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    x = np.zeros(w, np.float32)
    x[cols[0] : cols[-1] + 1] = np.linspace(-1, 1, cols[-1] + 1 - cols[0], dtype=np.float32)
    shade = (0.55 + 0.45 * np.cos(np.clip(x * 2.2 + 0.4, -np.pi / 2, np.pi / 2)))[None, :, None]
    colour = rng.integers(30, 210, 3).astype(np.float32)
    img = colour * shade * np.ones((h, 1, 1), np.float32)
    rows = np.flatnonzero(mask.any(axis=1))
    band = rows[0] + (rows[-1] - rows[0]) * 6 // 10
    img[band : band + (rows[-1] - rows[0]) // 6] = np.array([235, 225, 200], np.float32) * shade[0]
    return img + rng.normal(0, 6, img.shape).astype(np.float32)


def product_shot(product: str, background: str, *, size: Shape, seed: int) -> ProductShot:
    """One JPEG (quality 90) of ``product`` over ``background`` at ``size`` (height, width)."""
    rng = np.random.default_rng(seed)
    mask = PRODUCTS[product](size)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)[..., None]
    pixels = _paint(mask, rng) * alpha + BACKGROUNDS[background](size, rng) * (1 - alpha)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return ProductShot(name=f"{product}-{background}", jpeg=buffer.getvalue(), mask=mask)


def product_shots(count: int, *, size: Shape = (768, 1024)) -> list[ProductShot]:
    """``count`` distinct shots cycling through products and backgrounds."""
    products, backgrounds = list(PRODUCTS), list(BACKGROUNDS)
    # 3 products x 4 backgrounds: i mod 3 and i mod 4 give 12 distinct pairs before repeating.
    return [
        product_shot(products[i % 3], backgrounds[i % 4], size=size, seed=i)
        for i in range(max(1, count))
    ]

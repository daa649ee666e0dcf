"""Synthetic product shots with a known true mask, and encoders for test requests."""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

SIZE = (384, 512)  # H, W


def product_mask(shape: tuple[int, int] = SIZE) -> np.ndarray:
    """A bottle-like product: a rounded shoulder (ellipse) on a rectangular body."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    cx = w // 2
    cv2.rectangle(mask, (cx - 70, h // 2 - 40), (cx + 70, h - 50), 1, -1)
    cv2.ellipse(mask, (cx, h // 2 - 40), (70, 45), 0, 180, 360, 1, -1)
    cv2.rectangle(mask, (cx - 22, h // 2 - 130), (cx + 22, h // 2 - 75), 1, -1)
    return mask.astype(bool)


def render_product(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The product's colours: a side-lit cylinder with a label and fine texture."""
    h, w = shape
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    shade = 0.55 + 0.45 * np.cos(np.clip(x * 2.2 + 0.4, -np.pi / 2, np.pi / 2))
    base = np.array([40, 90, 200], np.float32) * shade * np.ones((h, 1, 1), np.float32)
    base[h // 2 + 10 : h // 2 + 80] = np.array([235, 225, 200], np.float32) * shade[0]
    base += rng.normal(0, 6, base.shape).astype(np.float32)
    return base


def _flat(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    return np.full((*shape, 3), (236, 236, 232), np.float32)


def _gradient(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 1, shape[0], dtype=np.float32)[:, None, None]
    top, bottom = np.array([250, 215, 170], np.float32), np.array([150, 110, 80], np.float32)
    return (top * (1 - t) + bottom * t) * np.ones((1, shape[1], 1), np.float32)


def _noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    grain = cv2.GaussianBlur(rng.normal(0, 1, (*shape, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(175 + 60 * grain, 0, 255)


def _blobs(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Photo-like out-of-focus background: large soft colour blobs."""
    img = np.full((*shape, 3), (120, 140, 110), np.float32)
    for _ in range(14):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(30, 140)), int(rng.integers(30, 140)))
        colour = tuple(float(c) for c in rng.integers(60, 230, 3))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return cv2.GaussianBlur(img, (0, 0), 12)


BACKGROUNDS: dict[str, Callable[[tuple[int, int], np.random.Generator], np.ndarray]] = {
    "flat": _flat,
    "gradient": _gradient,
    "noise": _noise,
    "blobs": _blobs,
}


def composite(background: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 product shot and its true mask, with a 1 px anti-aliased edge."""
    rng = np.random.default_rng(seed)
    mask = product_mask()
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)[..., None]
    img = render_product(SIZE, rng) * alpha + BACKGROUNDS[background](SIZE, rng) * (1 - alpha)
    return np.clip(img, 0, 255).astype(np.uint8), mask


PERIOD = 24


def periodic_texture(h: int, w: int, *, seed: int = 0) -> np.ndarray:
    """A smooth random 24 px tile repeated, plus sensor-like noise (sigma 4)."""
    rng = np.random.default_rng(seed)
    tile = cv2.resize(
        rng.integers(0, 256, (6, 6, 3)).astype(np.uint8),
        (PERIOD, PERIOD),
        interpolation=cv2.INTER_CUBIC,
    )
    tiled = np.tile(tile, (h // PERIOD + 1, w // PERIOD + 1, 1))[:h, :w].astype(np.float32)
    return np.clip(tiled + rng.normal(0, 4, tiled.shape), 0, 255).astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def encode(pixels: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image

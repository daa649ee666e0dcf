"""Real photographs cut out and pasted over other real photographs, with their true masks.

The synthetic product shots are flat-shaded; a quality gate also needs real texture and real
backgrounds. scikit-image bundles a few photographs (no download), but none with a mask, so each
shot here pastes a real photo, cut to a real silhouette (scikit-image's horse) or a plain shape,
over a photographed texture (grass, gravel, brick): the mask is then known exactly, and the
background holds no object of its own that a segmenter could rightly call the subject (over
scikit-image's coffee photo, the cup is as salient as anything pasted on it). The edge is
softened like a camera's (3x3 Gaussian), as in ``product_shots``.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image
from product_shots import ProductShot

SIZE = (768, 1024)  # (height, width), as the product shots


def _photo(name: str) -> np.ndarray:
    from skimage import data  # the bench's optional dependency; imported only when asked for

    image: np.ndarray = getattr(data, name)()
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image[..., :3]
    return cv2.resize(image, SIZE[::-1], interpolation=cv2.INTER_CUBIC)


def _horse() -> np.ndarray:
    from skimage import data

    horse = np.asarray(data.horse(), bool)
    silhouette = ~horse if horse.mean() > 0.5 else horse  # the horse is the minority
    mask = np.zeros(SIZE, np.uint8)
    h, w = SIZE[0] * 3 // 4, SIZE[1] * 3 // 5
    mask[SIZE[0] - h - 40 : SIZE[0] - 40, 200 : 200 + w] = cv2.resize(
        silhouette.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST
    )
    return mask


def _ellipse() -> np.ndarray:
    mask = np.zeros(SIZE, np.uint8)
    cv2.ellipse(mask, (SIZE[1] // 2, SIZE[0] // 2 + 40), (230, 300), 10, 0, 360, 1, -1)
    return mask


# (foreground photo, silhouette, background photo)
COMPOSITES = (
    ("chelsea", _horse, "grass"),
    ("astronaut", _ellipse, "gravel"),
    ("coffee", _horse, "brick"),
    ("rocket", _ellipse, "grass"),
)


def photo_composites() -> list[ProductShot]:
    shots = []
    for foreground, silhouette, background in COMPOSITES:
        mask = silhouette()
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)[..., None]
        pixels = _photo(foreground) * alpha + _photo(background) * (1 - alpha)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
        name = f"{foreground}-{silhouette.__name__.strip('_')}-on-{background}"
        shots.append(ProductShot(name=name, jpeg=buffer.getvalue(), mask=mask.astype(bool)))
    return shots

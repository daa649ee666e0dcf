"""Generate-background as one operation: the subject placed on a generated 1024x1024 scene."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retouch.engines.base import BackgroundGenerator, Segmenter
from retouch.errors import UnknownForeground
from retouch.ops.compose import composite, contact_shadow, place_subject, trim_to_alpha
from retouch.ops.cutout import cutout, subject_box

CANVAS = (1024, 1024)  # H, W: Pixelcut's output size
# Pixelcut pads an automatically cut-out subject to 60% of the canvas.
AUTO_CUTOUT_SCALE = 0.6


@dataclass(frozen=True)
class Placement:
    scale: float | None = None  # None: 1, or AUTO_CUTOUT_SCALE after an automatic cut-out
    x_center: float = 0.5
    y_center: float = 0.5


@dataclass(frozen=True)
class SceneRequest:
    scene: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int = 0


def has_transparency(pixels: np.ndarray) -> bool:
    """An alpha channel that makes something transparent; an all-opaque one says nothing about
    where the subject is, so such an image is cut out like an RGB one."""
    return pixels.shape[2] == 4 and bool(pixels[..., 3].min() < 255)


def generate_background(
    pixels: np.ndarray,
    *,
    segmenter: Segmenter,
    generator: BackgroundGenerator,
    placement: Placement,
    scene: SceneRequest,
) -> np.ndarray:
    """``pixels`` (uint8 RGB or RGBA) on a new scene: uint8 1024x1024x3.

    An input with transparency is used as it is (its alpha is the subject); otherwise the
    background is removed first and the subject trimmed to its alpha.
    """
    if has_transparency(pixels):
        subject = np.ascontiguousarray(pixels)
        default_scale = 1.0
    else:
        rgb = np.ascontiguousarray(pixels[..., :3])
        alpha = segmenter.mask(rgb)
        if subject_box(alpha) is None:
            raise UnknownForeground("No foreground subject could be detected in the image")
        subject = trim_to_alpha(cutout(rgb, alpha))
        default_scale = AUTO_CUTOUT_SCALE
    if not subject[..., 3].any():
        raise UnknownForeground("The image is fully transparent: there is no subject to place")
    canvas = place_subject(
        subject,
        canvas_size=CANVAS,
        scale=placement.scale if placement.scale is not None else default_scale,
        x_center=placement.x_center,
        y_center=placement.y_center,
    )
    background = generator.background(
        canvas,
        scene=scene.scene,
        prompt=scene.prompt,
        negative_prompt=scene.negative_prompt,
        seed=scene.seed,
    )
    return composite(background, canvas, contact_shadow(canvas))

"""Generate-background as one operation: the subject placed on a generated 1024x1024 scene."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import cv2
import numpy as np

from retouch.engines.base import Backdrop, BackgroundGenerator, SceneRenderer, Segmenter
from retouch.errors import UnknownForeground
from retouch.ops.compose import composite, contact_shadow, place_subject, trim_to_alpha
from retouch.ops.cutout import cutout, subject_box

# Name reported for a scene from a generator that does not name its scenes (diffusion).
GENERATED = "generated"
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


class _SceneKeywords(TypedDict):
    """A ``SceneRequest`` as the keywords both generator Protocols take."""

    scene: str | None
    prompt: str | None
    negative_prompt: str | None
    seed: int


@dataclass(frozen=True)
class SceneResult:
    image: np.ndarray  # uint8 1024x1024x3
    scene: str  # the scene drawn: a preset, a library scene the prompt chose, or GENERATED


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
    """``pixels`` (uint8 RGB or RGBA) on a new scene: uint8 1024x1024x3 (see ``compose_scene``)."""
    return compose_scene(
        pixels, segmenter=segmenter, generator=generator, placement=placement, scene=scene
    ).image


def compose_scene(
    pixels: np.ndarray,
    *,
    segmenter: Segmenter,
    generator: BackgroundGenerator,
    placement: Placement,
    scene: SceneRequest,
) -> SceneResult:
    """``pixels`` (uint8 RGB or RGBA) on a new scene, and which scene it is.

    An input with transparency is used as it is (its alpha is the subject); otherwise the
    background is removed first and the subject trimmed to its alpha. A generator that says
    where its light comes from (``SceneRenderer``) gets a shadow cast away from that light and
    the subject gently relit from that side; any other gets the contact shadow alone.
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
    request: _SceneKeywords = {
        "scene": scene.scene,
        "prompt": scene.prompt,
        "negative_prompt": scene.negative_prompt,
        "seed": scene.seed,
    }
    if isinstance(generator, SceneRenderer):
        backdrop = generator.backdrop(canvas, **request)
    else:
        backdrop = Backdrop(generator.background(canvas, **request), scene.scene or GENERATED)
    shadow = contact_shadow(canvas)
    if backdrop.light:
        shadow = 1 - (1 - shadow) * (1 - cast_shadow(canvas, backdrop.light))
        canvas = relight(canvas, backdrop.image, backdrop.light)
    return SceneResult(composite(backdrop.image, canvas, shadow), backdrop.scene)


# The cast shadow: how far it reaches behind the subject (a share of the subject's height,
# the light being in front and above), how far it leans away from the light, and its darkness.
_CAST_LENGTH, _CAST_LEAN, _CAST_DENSITY = 0.28, 0.45, 0.32
_SHADOW_SIDE = 256
# The relight: brightness from the lit side to the far side, and the share of the scene's
# average colour the subject takes on (its ambient light).
_RELIGHT, _AMBIENT = 0.07, 0.08


def cast_shadow(canvas: np.ndarray, light: float) -> np.ndarray:
    """How much the subject's cast shadow darkens the floor: float32 HxW in [0, 1].

    The subject's silhouette laid on the floor behind it (squashed towards its foot and leaning
    away from ``light``: -1 the left, 1 the right), sharp where it touches the subject and
    softer and fainter the farther it reaches, as a broad key light makes it.
    """
    h, w = canvas.shape[:2]
    box = subject_box(canvas[..., 3], threshold=127, min_fraction=0)
    if box is None:
        return np.zeros((h, w), np.float32)
    scale = min(1.0, _SHADOW_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    alpha = cv2.resize(canvas[..., 3].astype(np.float32) / 255, size, interpolation=cv2.INTER_AREA)
    base, tall = box.bottom * scale, (box.bottom - box.top) * scale
    lean, squash = _CAST_LEAN * -light, _CAST_LENGTH
    # A point at height t above the foot lands at (x + lean * t, base - squash * t).
    matrix = np.array([[1, -lean, lean * base], [0, squash, base * (1 - squash)]], np.float32)
    laid = cv2.warpAffine(alpha, matrix, size, flags=cv2.INTER_LINEAR)
    near = cv2.GaussianBlur(laid, (0, 0), max(0.01 * tall, 0.6))
    far = cv2.GaussianBlur(laid, (0, 0), max(0.06 * tall, 1.0))
    rows = np.arange(size[1], dtype=np.float32)[:, None]
    reach = np.clip((base - rows) / max(squash * tall, 1.0), 0, 1)
    shadow = _mix_planes(near, far, reach) * (1 - 0.8 * reach) * (rows < base + 1)
    result: np.ndarray = cv2.resize(shadow * _CAST_DENSITY, (w, h), interpolation=cv2.INTER_LINEAR)
    return result


def _mix_planes(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    result: np.ndarray = a + (b - a) * t
    return result


def relight(canvas: np.ndarray, background: np.ndarray, light: float) -> np.ndarray:
    """``canvas`` (uint8 HxWx4) with its subject a little brighter on the side ``light`` comes
    from and tinted a little by ``background``'s average colour, as the scene would light it."""
    box = subject_box(canvas[..., 3], threshold=0, min_fraction=0)
    if box is None:
        return canvas
    out = canvas.copy()
    part = out[box.top : box.bottom, box.left : box.right]
    cols = np.arange(box.left, box.right, dtype=np.float32)
    across = (cols - (box.left + box.right) / 2) / max((box.right - box.left) / 2, 1)
    side = 1 + _RELIGHT * across * light
    ambient = background.reshape(-1, 3).mean(axis=0).astype(np.float32)
    ambient = 1 - _AMBIENT + _AMBIENT * ambient / max(float(ambient.mean()), 1.0)
    lit = part[..., :3] * (side[None, :, None] * ambient[None, None, :])
    part[..., :3] = np.clip(lit + 0.5, 0, 255).astype(np.uint8)
    return out

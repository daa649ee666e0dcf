"""Remove-background operations: cut-out, subject box, crop with margins, cast shadow.

Pure functions on numpy arrays: ``rgb`` is uint8 HxWx3, ``rgba`` uint8 HxWx4, ``alpha`` float32
HxW in [0, 1]. Boxes are ``(left, top, right, bottom)`` in pixels with right/bottom exclusive, so
``rgba[top:bottom, left:right]`` is the box. Nothing here knows about HTTP: a function that finds
nothing returns ``None`` and the caller decides which error that is.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from retouch.specs import MarginSpec

# Soft work (colour estimation, shadows) runs at most at this long side and is upsampled: it is
# smooth by nature, and full-resolution blurs on a 6000 px image would cost seconds and gigabytes.
_WORK_LONG_SIDE = 1024

# Decontamination's local means are taken at most at this long side. Measured on 12 bench shots
# at 1024x768: 141 ms CPU at 1024 px, 84 at 768, 51 at 512, 45 at 384; edge colours moved by
# 0.7, 1.1 and 1.3 levels (of 255) on average from the 1024 px result. The means are wide blurs
# (a 24th of the image) of smooth colour, so 512 px loses nothing visible.
_DECONTAMINATE_LONG_SIDE = 512

# A subject must cover at least this share of the image (0.1%: about 32x32 px of a 1 MP image).
# Smaller specks are the model's noise on an image with nothing to cut out.
MIN_SUBJECT_FRACTION = 0.001


class Box(NamedTuple):
    left: int
    top: int
    right: int
    bottom: int


class Margins(NamedTuple):
    """Resolved margins in pixels, each >= 0."""

    left: int
    top: int
    right: int
    bottom: int


def _work_size(h: int, w: int, long_side: int = _WORK_LONG_SIDE) -> tuple[float, tuple[int, int]]:
    scale = min(1.0, long_side / max(h, w))
    return scale, (max(1, round(w * scale)), max(1, round(h * scale)))


def cutout(rgb: np.ndarray, alpha: np.ndarray, *, decontaminate: bool = True) -> np.ndarray:
    """The subject on a transparent background, as uint8 RGBA of the input's size.

    Fully opaque pixels keep their colours exactly. With ``decontaminate``, semi-transparent edge
    pixels get an estimated foreground colour instead of the photo's mix of subject and old
    background, which otherwise shows as a coloured fringe on any new background. Fully
    transparent pixels are black: the old background is not carried along invisibly, and the
    PNG is about a third smaller and faster to encode.
    """
    a8 = np.rint(np.clip(alpha, 0, 1) * 255).astype(np.uint8)
    colour = _decontaminate(rgb, alpha, (a8 > 0) & (a8 < 255)) if decontaminate else rgb
    rgba = cv2.merge([*cv2.split(colour), a8])
    # The mask zeroes every channel where a8 is 0 and copies the rest: one pass, no broadcasts.
    return cv2.bitwise_and(rgba, rgba, mask=a8)


def _decontaminate(rgb: np.ndarray, alpha: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Foreground colours at ``edge`` pixels by two-pass blur fusion (Forte & Pitié, 2021).

    With local means F of the subject and B of the background, ``F + a(I - aF - (1-a)B)`` is I
    where a = 1 and the local subject colour where a -> 0. A wide pass reaches past soft edges to
    find pure colours, a narrow pass on its output makes them local. The means are taken at the
    working size and only the edge pixels are computed at full size.
    """
    if not edge.any():
        return rgb
    h, w = alpha.shape
    _, small = _work_size(h, w, _DECONTAMINATE_LONG_SIDE)
    img = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA).astype(np.float32)
    a = cv2.resize(alpha.astype(np.float32), small, interpolation=cv2.INTER_AREA)[..., None]
    wide = max(small) // 24 * 2 + 1
    fg = bg = img
    for k in (wide, max(3, wide // 15 * 2 + 1)):
        fg_mean, bg_mean = _weighted_mean(fg, a, k), _weighted_mean(bg, 1 - a, k)
        fg, bg = _fuse(img, a, fg_mean, bg_mean), bg_mean
    # uint8 so that upsampling for a huge input costs bytes, not floats, per pixel.
    fg_e, bg_e = (
        cv2.resize(np.clip(m, 0, 255).astype(np.uint8), (w, h))[edge].astype(np.float32)
        for m in (fg_mean, bg_mean)
    )
    out = rgb.copy()
    out[edge] = np.rint(_fuse(rgb[edge], alpha[edge].astype(np.float32)[:, None], fg_e, bg_e))
    return out


def _weighted_mean(x: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    result: np.ndarray = cv2.blur(x * weight, (k, k)) / (cv2.blur(weight, (k, k))[..., None] + 1e-5)
    return result


def _fuse(image: np.ndarray, a: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.clip(fg + a * (image - a * fg - (1 - a) * bg), 0, 255)
    return result


def subject_box(
    alpha: np.ndarray, threshold: float = 0.5, *, min_fraction: float = MIN_SUBJECT_FRACTION
) -> Box | None:
    """The tight box around pixels with ``alpha > threshold``, or None when there is no subject.

    "No subject" is fewer than ``min_fraction`` of all pixels above the threshold (which covers
    a max alpha below it). Threshold 0.5 decides whether there is a subject; to crop without
    clipping a soft rim, callers may take the box at a lower threshold.
    """
    fg = alpha > threshold
    if fg.sum() < max(1, min_fraction * fg.size):
        return None
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def resolve_margin(spec: MarginSpec, *, subject: int) -> int:
    """Pixels of margin on one side of a crop, before the output limit (``resolve_margins``).

    ``subject`` is the subject box's extent along this side's axis (width for left/right, height
    for top/bottom). A percentage is of that extent: "10%" on the left of a 400 px wide subject
    leaves 40 px. Each side stands on its own, so every value in Pixelcut's 0..49% range is
    satisfiable (49% on both sides makes the result 1.98 times the subject) and equal specs give
    equal margins. Rounded half up.

    Raises ValueError for a negative pixel margin or a percentage outside 0..49.
    """
    if spec.value < 0 or (spec.unit == "%" and spec.value > 49):
        raise ValueError(f"margin out of range: {spec.value}{spec.unit} (0..49% or >= 0px)")
    pixels = spec.value if spec.unit == "px" else spec.value / 100 * subject
    return math.floor(pixels + 0.5)


def _fit(extent: int, before: int, after: int, max_side: int) -> tuple[int, int]:
    """The two margins of one axis, shrunk in proportion so the axis fits ``max_side``."""
    room = max(0, max_side - extent)
    if before + after <= room:
        return before, after
    return before * room // (before + after), after * room // (before + after)


def resolve_margins(
    box: Box,
    *,
    left: MarginSpec,
    top: MarginSpec,
    right: MarginSpec,
    bottom: MarginSpec,
    max_side: int | None = None,
) -> Margins:
    """All four margins for a crop of ``box`` (see ``resolve_margin``).

    With ``max_side``, an axis whose subject plus margins would exceed it has both its margins
    shrunk in the ratio asked for, so the result is at most ``max_side`` on that axis and the
    subject keeps its relative place; the other axis is untouched. A margin is never refused for
    its size: any documented value gives a result.
    """
    width, height = box.right - box.left, box.bottom - box.top
    ml, mr = resolve_margin(left, subject=width), resolve_margin(right, subject=width)
    mt, mb = resolve_margin(top, subject=height), resolve_margin(bottom, subject=height)
    if max_side is not None:
        ml, mr = _fit(width, ml, mr, max_side)
        mt, mb = _fit(height, mt, mb, max_side)
    return Margins(ml, mt, mr, mb)


def crop_to_subject(rgba: np.ndarray, box: Box, margins: Margins) -> np.ndarray:
    """``box`` grown by ``margins``, padded with transparent pixels beyond the image.

    The result is exactly ``(box height + top + bottom) x (box width + left + right)``. Callers
    bound the margins first: a pixel margin is not limited by the image's size.
    """
    x0, y0 = box.left - margins.left, box.top - margins.top
    x1, y1 = box.right + margins.right, box.bottom + margins.bottom
    h, w = rgba.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, rgba.shape[2]), rgba.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx0 < sx1 and sy0 < sy1:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgba[sy0:sy1, sx0:sx1]
    return out


# Image rows per pixel of floor depth: the camera looks slightly down onto the floor.
_FLOOR_TILT = 0.35
# Smallest vertical spread of the shadow (rows per pixel of subject height), so a light level
# with the subject in depth still gives a visible floor shadow rather than a line.
_MIN_SPREAD = 0.05
# Penumbra blur (sigma, px) per pixel of height above the floor at light_size 1.
_PENUMBRA = 0.1
# Share of the shadow's density lost from the contact line to the tip of the shadow.
_FADE = 0.5
# Heights at which the penumbra is computed; bands in between are blended.
_BANDS = 8


def cast_shadow(
    rgba: np.ndarray,
    *,
    opacity: float = 0.5,
    light_size: float = 0.3,
    light_x: float = -0.3,
    light_y: float = -0.6,
    light_z: float = 0.7,
) -> np.ndarray:
    """The cut-out over a soft floor shadow cast away from a point light; same size as the input.

    Light position (Pixelcut's ``light_source``), normalised to the image centre:

    * ``light_x`` in -1..1: left edge of the image to its right edge.
    * ``light_y`` in -1..1: image coordinates, so negative is above the centre. The image's
      vertical is read as depth on the floor: above the centre is behind the subject, so the
      shadow falls forward, down the image; below the centre puts the shadow behind the subject.
    * ``light_z`` in 0..2: height above the subject's top, in subject heights. A low light casts
      a long shadow, a high one a short shadow close to the subject.
    * ``light_size`` in 0..1: emitter size; the penumbra widens with it and with the distance
      from the contact line.

    The subject stands on the floor at the bottom of its box. Each point of the mask at height
    ``h`` above that line lands ``h`` times a fixed offset away from the light (a shear), so the
    mask is projected onto the floor; the shadow is drawn in height bands, each blurred by its
    own penumbra and faded with height. Shadow pixels are black with alpha
    ``opacity * density``, composited under the subject; opaque subject pixels are unchanged.
    An image without a subject is returned as is.
    """
    alpha = rgba[..., 3].astype(np.float32) / 255
    box = subject_box(alpha)
    if box is None:
        return rgba.copy()
    h, w = alpha.shape
    scale, small = _work_size(h, w)
    mask = cv2.resize(alpha, small, interpolation=cv2.INTER_AREA)
    left, top, right, bottom = (v * scale for v in box)
    ground = bottom - 0.5  # the centre of the subject's last row: its shadow starts right below
    height = max(ground - top, 1.0)

    light_height = height * (1 + max(light_z, 0.0))
    shear = ((left + right) / 2 - (1 + light_x) * small[0] / 2) / light_height
    spread = -light_y * small[1] / 2 / light_height * _FLOOR_TILT
    spread = math.copysign(max(abs(spread), _MIN_SPREAD), spread)
    # (x, y) at height g - y lands at (x + shear * (g - y), g + spread * (g - y)).
    project = np.array(
        [[1, -shear, shear * ground], [0, -spread, ground * (1 + spread)]], np.float32
    )

    # Bands overlap as tents (weights sum to 1 at every height), so the penumbra widens smoothly
    # instead of stepping at band edges.
    elevation = np.clip(ground - np.arange(small[1], dtype=np.float32), 0, height)[:, None]
    step = height / _BANDS
    density: np.ndarray = np.zeros_like(mask)
    for band in range(_BANDS + 1):
        weight = np.clip(1 - np.abs(elevation / step - band), 0, None)
        cast = cv2.warpAffine(mask * weight, project, small, flags=cv2.INTER_LINEAR)
        sigma = 0.5 + light_size * _PENUMBRA * band * step
        density += cv2.GaussianBlur(cast, (0, 0), sigma) * (1 - _FADE * band / _BANDS)
    density = cv2.resize(density, (w, h), interpolation=cv2.INTER_LINEAR)

    # Only pixels that gain shadow and are not opaque change; working on those alone keeps a
    # 6000 px image from needing several full-size float copies.
    out = rgba.copy()
    touched = (density > 0) & (rgba[..., 3] < 255)
    a = alpha[touched]
    shadow = np.minimum(density[touched], 1) * float(np.clip(opacity, 0, 1))
    out_alpha = a + shadow * (1 - a)
    # Black shadow under the subject: colour is the subject's share of the result (pixels that
    # stay fully transparent keep theirs).
    keep = np.divide(a, out_alpha, out=np.ones_like(a), where=out_alpha > 0)
    out[touched, :3] = np.rint(rgba[touched, :3] * keep[:, None])
    out[touched, 3] = np.rint(out_alpha * 255)
    return out

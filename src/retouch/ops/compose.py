"""Generate-background operations: trim, place the subject on a canvas, contact shadow, composite.

Pure functions on numpy arrays: ``rgb`` is uint8 HxWx3, ``rgba`` uint8 HxWx4 with straight
(unassociated) alpha, a canvas is the output's size. Sizes are ``(height, width)`` like array
shapes; positions are fractions of the canvas measured from its top-left corner.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from retouch.ops.cutout import subject_box

# The shadow is smooth, so it is drawn at most at this long side and upsampled.
_SHADOW_LONG_SIDE = 256
# Share of the subject's height, from its bottom edge up, that counts as touching the floor.
_FOOT = 0.06
# The soft shadow's half-height as a share of its half-width: a camera a little above the
# table sees a circle on the floor as a flat ellipse.
_ELLIPSE_FLATNESS = 0.16


def trim_to_alpha(rgba: np.ndarray) -> np.ndarray:
    """A copy of ``rgba`` cropped to the box of its pixels with alpha > 0.

    A fully transparent image has nothing to crop to and is returned whole (as a copy).
    """
    box = subject_box(rgba[..., 3], threshold=0, min_fraction=0)
    if box is None:
        return rgba.copy()
    return rgba[box.top : box.bottom, box.left : box.right].copy()


def place_subject(
    rgba: np.ndarray,
    *,
    canvas_size: tuple[int, int] = (1024, 1024),
    scale: float,
    x_center: float,
    y_center: float,
) -> np.ndarray:
    """``rgba`` resized and placed on a transparent uint8 canvas of ``canvas_size`` (H, W).

    Pixelcut's ``image_transform``: at ``scale`` 1 the image is as large as fits the canvas
    (on a square canvas its longest edge is the canvas side), 0.5 half that; the image's centre
    lands at ``(x_center * W, y_center * H)``, rounded to whole pixels. What falls outside the
    canvas is clipped; pixels the image does not cover are transparent black.

    Resizing is done on premultiplied colour, so the colours of transparent pixels (a cut-out
    keeps the old background there) cannot bleed into the edges: INTER_AREA when shrinking,
    bicubic when enlarging. Raises ValueError for a ``scale`` that is not > 0.
    """
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"scale must be > 0, got {scale}")
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an HxWx4 image, got shape {rgba.shape}")
    ch, cw = canvas_size
    h, w = rgba.shape[:2]
    factor = scale * min(cw / w, ch / h)
    nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
    left = math.floor(x_center * cw - nw / 2 + 0.5)
    top = math.floor(y_center * ch - nh / 2 + 0.5)
    canvas = np.zeros((ch, cw, 4), np.uint8)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + nw, cw), min(top + nh, ch)
    if x0 >= x1 or y0 >= y1:
        return canvas

    def resize(plane: np.ndarray) -> np.ndarray:
        if factor < 1:
            small = cv2.resize(plane, (nw, nh), interpolation=cv2.INTER_AREA)
            return small[y0 - top : y1 - top, x0 - left : x1 - left]
        # Enlarging straight onto the visible part: a scale of 10 never builds the whole
        # 10x image. The matrix is cv2.resize's pixel-centre mapping shifted onto the canvas.
        fx, fy = nw / w, nh / h
        matrix = np.array(
            [[fx, 0, (fx - 1) / 2 + left - x0], [0, fy, (fy - 1) / 2 + top - y0]], np.float32
        )
        return cv2.warpAffine(
            plane,
            matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        )

    # Premultiplied planes (colour x alpha, and alpha x 255 to match). Shrinking averages, so
    # uint16 holds them exactly at half float32's memory, one plane at a time for a 6000 px
    # input. Bicubic overshoots at edges and would saturate uint16, but when enlarging the
    # source is smaller than the canvas, so float32 costs little there.
    dtype = np.uint16 if factor < 1 else np.float32
    a = rgba[..., 3].astype(dtype)
    # Colour and coverage overshoot together at an edge; their ratio stays the true colour, so
    # the coverage is clipped only for the alpha written out.
    coverage = resize(a * 255).astype(np.float32)
    # Pixels whose alpha rounds to 0 stay transparent black, like the rest of the canvas.
    unpremultiply = np.divide(255, coverage, out=np.zeros_like(coverage), where=coverage >= 127.5)
    out = canvas[y0:y1, x0:x1]
    for c in range(3):
        colour = resize(rgba[..., c] * a).astype(np.float32) * unpremultiply
        out[..., c] = np.rint(np.clip(colour, 0, 255))
    out[..., 3] = np.rint(np.clip(coverage / 255, 0, 255))
    return canvas


def contact_shadow(canvas_rgba: np.ndarray, *, strength: float = 0.6) -> np.ndarray:
    """How much to darken the background under the subject: float32 HxW in [0, 1].

    The subject stands on the floor at the bottom of its box. Two parts: a soft flat ellipse
    centred on that bottom edge, as wide as the part of the subject touching the floor (its
    lowest ``_FOOT`` of height) and a little wider, and a tight dark line right under that part
    (ambient occlusion, where the floor meets the object). Nothing reaches above the subject's
    foot. ``strength`` is the darkening at the darkest point. A canvas without a subject
    gets no shadow.
    """
    h, w = canvas_rgba.shape[:2]
    alpha = canvas_rgba[..., 3].astype(np.float32) / 255
    box = subject_box(alpha, min_fraction=0)
    if box is None:
        return np.zeros((h, w), np.float32)
    scale = min(1.0, _SHADOW_LONG_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    bottom = box.bottom * scale
    height = (box.bottom - box.top) * scale

    rows = np.arange(size[1], dtype=np.float32)[:, None] + 0.5
    ankle = bottom - max(_FOOT * height, 1.0)
    foot = small * ((rows > ankle) & (rows < bottom + 1))
    # A subject a few pixels thin is faint once shrunk, hence the low threshold.
    cols = np.flatnonzero(foot.max(axis=0) > 0.25)
    if cols.size == 0:
        return np.zeros((h, w), np.float32)
    half_width = max((cols[-1] + 1 - cols[0]) / 2, 1.0)
    centre = ((cols[0] + cols[-1] + 1) / 2, bottom)

    ellipse = np.zeros((size[1], size[0]), np.float32)
    axes = (half_width * 1.15, max(half_width * _ELLIPSE_FLATNESS, 1.0))
    # Sub-pixel precision: cv2.ellipse takes integer coordinates scaled by 2**shift.
    shift = 4
    cv2.ellipse(
        ellipse,
        tuple(round(v * 2**shift) for v in centre),
        tuple(round(v * 2**shift) for v in axes),
        0,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
        shift,
    )
    ellipse = cv2.GaussianBlur(ellipse, (0, 0), max(axes[1] * 0.8, 0.8))

    # The occlusion line: the foot nudged down by a pixel or so and blurred just enough to be
    # soft; scaled with the subject so a large product does not get a hairline.
    reach = max(0.012 * height, 0.6)
    nudge = np.array([[1, 0, 0], [0, 1, reach]], np.float32)
    occlusion = cv2.warpAffine(foot, nudge, size, flags=cv2.INTER_LINEAR)
    occlusion = np.minimum(cv2.GaussianBlur(occlusion, (0, 0), reach) * 1.6, 1)

    density = 1 - (1 - 0.55 * ellipse) * (1 - 0.9 * occlusion)
    # Faded out above the foot: the ellipse's upper half would otherwise rise beside the subject
    # as a dark halo, on the wall when the subject stands close to it.
    density *= np.clip((rows - ankle + axes[1]) / axes[1], 0, 1)
    shadow = cv2.resize(density, (w, h), interpolation=cv2.INTER_LINEAR)
    result: np.ndarray = np.clip(shadow * float(np.clip(strength, 0, 1)), 0, 1)
    return result


def composite(
    background_rgb: np.ndarray, canvas_rgba: np.ndarray, shadow: np.ndarray
) -> np.ndarray:
    """The subject over the background darkened by ``shadow``: uint8 HxWx3.

    ``canvas_rgba`` has straight alpha (as ``place_subject`` makes it), so "over" is
    ``colour * a + background * (1 - a)``; ``shadow`` (float HxW in [0, 1]) multiplies the
    background by ``1 - shadow``. Where alpha is 255 the subject's pixels come out exactly, where
    it is 0 and there is no shadow the background's do.
    """
    if background_rgb.shape[:2] != canvas_rgba.shape[:2] or shadow.shape != canvas_rgba.shape[:2]:
        raise ValueError(
            f"sizes differ: background {background_rgb.shape[:2]}, canvas "
            f"{canvas_rgba.shape[:2]}, shadow {shadow.shape}"
        )
    a = canvas_rgba[..., 3].astype(np.float32) / np.float32(255)
    behind = (1 - a) * (1 - shadow.astype(np.float32))
    # Weights repeated per channel: numpy broadcasting HxWx3 against HxWx1 runs in loops of 3.
    out = canvas_rgba[..., :3] * cv2.merge([a] * 3) + background_rgb * cv2.merge([behind] * 3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)

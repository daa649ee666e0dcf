"""Outpaint: grow an image on any side, the new border invented by a ``Filler``.

The original pixels land unchanged inside the larger canvas; everything the operation adds or
adjusts lies outside them.
"""

from __future__ import annotations

import cv2
import numpy as np

from retouch.engines.base import Filler, Segmenter
from retouch.errors import InvalidParameter

MIN_SIDE = 128
MAX_EXTENSION = 2000

# The seam correction compares Hann-weighted means of up to this many px either side of the
# seam: a window this deep averages a repeating texture out (its periods are usually shorter),
# so a faithful continuation reads as "no mismatch" and is left alone.
_SEAM_DEPTH = 64
# Along the seam the mismatch is smoothed with this sigma (px): only colour shifts are corrected,
# never the texture itself.
_SEAM_SIGMA = 24.0
# Mismatches up to this many levels are left alone (the correction is soft-thresholded): two
# windows on a texture never average exactly alike, and a faithful fill should stay untouched.
_SEAM_TOLERANCE = 2.0
# The correction fades to nothing this far (px) into the new border.
_SEAM_REACH = 96.0
# Along a seam that the subject covers for several sigma, the background's mismatch fades out
# instead of being divided by a vanishing weight: below this share of background support the
# correction shrinks in proportion.
_MIN_SEAM_SUPPORT = 0.05
# Pixels the segmenter gives at least this alpha count as subject and are kept out of the
# fill's sources: a low bar, because a half-transparent edge (fur, whiskers, hair) is as
# recognisable when cloned as the core. Grown by this share of the image's long side so the
# subject's soft rim goes with it.
_SUBJECT_ALPHA = 0.1
_SUBJECT_MARGIN = 0.02


def outpaint(
    pixels: np.ndarray,
    *,
    left: int,
    top: int,
    right: int,
    bottom: int,
    filler: Filler,
    creativity: float,
    seed: int,
    segmenter: Segmenter | None = None,
) -> np.ndarray:
    """``pixels`` (uint8 RGB or RGBA, HxW) on a uint8 RGB canvas of
    ``(top + H + bottom) x (left + W + right)``, the added border filled by ``filler``.

    The input is placed at ``(top, left)`` unchanged. Transparency is not kept: Pixelcut turns
    PNG input into JPEG for processing, so an RGBA input is flattened onto white first, as a
    JPEG export with a white matte would. After filling, a low-frequency colour correction (see
    ``_match_seam``) pulls the fill's colour towards the original's along each seam, fading out
    ``_SEAM_REACH`` px into the border; it never touches the original pixels.

    With a ``segmenter``, the photo's subject is found first and passed to the filler as
    ``exclude``: the border continues the scene around the subject instead of filling up with
    copies of it (a cat's eyes, a product's label).
    """
    _check(pixels, left=left, top=top, right=right, bottom=bottom, creativity=creativity)
    rgb = _flatten(pixels)
    h, w = rgb.shape[:2]
    canvas = np.zeros((top + h + bottom, left + w + right, 3), np.uint8)
    inside = np.s_[top : top + h, left : left + w]
    canvas[inside] = rgb
    mask = np.ones(canvas.shape[:2], bool)
    mask[inside] = False
    if segmenter is None:
        subject = None
        out = filler.fill(canvas, mask, creativity=creativity, seed=seed)
    else:
        subject = subject_mask(rgb, segmenter)
        exclude = np.zeros_like(mask)
        exclude[inside] = subject
        out = filler.fill(canvas, mask, creativity=creativity, seed=seed, exclude=exclude)
    _match_seam(out, top=top, left=left, height=h, width=w, subject=subject)
    # Fillers promise to keep known pixels; this makes "unchanged inside" hold whatever they do.
    out[inside] = rgb
    return out


def subject_mask(rgb: np.ndarray, segmenter: Segmenter) -> np.ndarray:
    """Where the subject of ``rgb`` is, generously (bool HxW): what a fill must not copy."""
    subject = (segmenter.mask(rgb) >= _SUBJECT_ALPHA).astype(np.uint8)
    side = 2 * round(_SUBJECT_MARGIN * max(rgb.shape[:2])) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    grown: np.ndarray = cv2.dilate(subject, disc)
    return grown > 0


def _check(
    pixels: np.ndarray, *, left: int, top: int, right: int, bottom: int, creativity: float
) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"pixels must be uint8 HxWx3 or HxWx4, got {pixels.dtype} {pixels.shape}")
    sides = {"left": left, "top": top, "right": right, "bottom": bottom}
    for name, value in sides.items():
        if not 0 <= value <= MAX_EXTENSION:
            raise InvalidParameter(f"{name} must be between 0 and {MAX_EXTENSION}, got {value}")
    if not any(sides.values()):
        raise InvalidParameter("At least one of left, top, right and bottom must be greater than 0")
    if not 0 <= creativity <= 1:
        raise InvalidParameter(f"creativity must be between 0 and 1, got {creativity}")
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InvalidParameter(
            f"Image is {w}x{h} px; outpaint needs at least {MIN_SIDE} px on each side"
        )


def _flatten(pixels: np.ndarray) -> np.ndarray:
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels)
    alpha = pixels[..., 3:].astype(np.float32) / 255
    over_white = pixels[..., :3] * alpha + 255 * (1 - alpha)
    return np.round(over_white).astype(np.uint8)


def _match_seam(
    canvas: np.ndarray,
    *,
    top: int,
    left: int,
    height: int,
    width: int,
    subject: np.ndarray | None = None,
) -> None:
    """Shift the border's colours, in place, so that along each seam their local mean matches
    the original's, the shift fading out with the distance from the original.

    A poor man's Poisson blend: fillers that drift in colour (a diffusion model's VAE, an
    upsampled fill) otherwise leave a visible edge where the original ends. Each side's
    mismatch is a profile along that side. A border pixel takes the profile value at its nearest
    original pixel; in a corner region, where that is the corner itself, the two sides' end
    values are mixed by how nearly the pixel lies straight out from each side, so the shift is
    continuous all the way round.

    Pixels of ``subject`` (bool, the original's size) take no part in the original's side of the
    comparison: the fill continues the background, so where the subject meets the seam the
    border must not be tinted towards the subject's colour. There the mismatch is carried over
    from the background either side of it along the seam.
    """
    full_h, full_w = canvas.shape[:2]
    original = canvas[top : top + height, left : left + width]
    weight = (
        np.ones((height, width), np.float32) if subject is None else (~subject).astype(np.float32)
    )
    # Strips are laid out (distance from the seam, position along it, channel).
    top_offset = _seam_offset(original, weight, canvas[:top, left : left + width][::-1])
    bottom_offset = _seam_offset(
        original[::-1], weight[::-1], canvas[top + height :, left : left + width]
    )
    left_offset = _seam_offset(
        original.swapaxes(0, 1),
        weight.T,
        canvas[top : top + height, :left][:, ::-1].swapaxes(0, 1),
    )
    right_offset = _seam_offset(
        original[:, ::-1].swapaxes(0, 1),
        weight[:, ::-1].T,
        canvas[top : top + height, left + width :].swapaxes(0, 1),
    )
    reach = int(_SEAM_REACH)
    y0, y1 = max(0, top - reach), min(full_h, top + height + reach)
    x0, x1 = max(0, left - reach), min(full_w, left + width + reach)
    # Four non-overlapping regions cover the border within reach: the top and bottom ones
    # include the corners.
    for rows, cols in (
        ((y0, top), (x0, x1)),
        ((top + height, y1), (x0, x1)),
        ((top, top + height), (x0, left)),
        ((top, top + height), (left + width, x1)),
    ):
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            continue
        y = np.arange(*rows)[:, None]
        x = np.arange(*cols)[None, :]
        dy = np.maximum(np.maximum(top - y, y - (top + height - 1)), 0).astype(np.float32)
        dx = np.maximum(np.maximum(left - x, x - (left + width - 1)), 0).astype(np.float32)
        along_x = np.clip(x - left, 0, width - 1)
        along_y = np.clip(y - top, 0, height - 1)
        vertical = np.where((y < top)[..., None], top_offset[along_x], bottom_offset[along_x])
        horizontal = np.where((x < left)[..., None], left_offset[along_y], right_offset[along_y])
        dy2, dx2 = (dy * dy)[..., None], (dx * dx)[..., None]
        shift = (vertical * dy2 + horizontal * dx2) / (dy2 + dx2)
        shift *= _fade(np.hypot(dy, dx))[..., None]
        region = canvas[rows[0] : rows[1], cols[0] : cols[1]]
        region[...] = np.clip(np.round(region + shift), 0, 255).astype(np.uint8)


def _seam_offset(inner: np.ndarray, weight: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Original minus fill colour along one seam, as (length, 3) float32 (zeros where the side
    was not extended). Both strips are (distance from the seam, length, 3); ``weight`` (distance,
    length) is how much each original pixel counts (0 on the subject). A normalised
    convolution along the seam fills in where no original pixel counts."""
    depth = min(_SEAM_DEPTH, outer.shape[0], inner.shape[0])
    if depth == 0:
        return np.zeros((inner.shape[1], 3), np.float32)
    hann = np.hanning(depth + 2)[1:-1].astype(np.float32)
    hann /= hann.sum()
    weights = hann[:, None] * weight[:depth]
    diff = np.einsum("dl,dlc->lc", weights, inner[:depth].astype(np.float32))
    diff -= np.einsum("d,dlc->lc", hann, outer[:depth].astype(np.float32)) * weights.sum(0)[:, None]
    # Per position: sum of weight * (inner - outer mean), then divided by the smoothed weight.
    support = _smooth_along(weights.sum(0)[:, None])
    offset = _smooth_along(diff) / np.maximum(support, _MIN_SEAM_SUPPORT)
    result: np.ndarray = np.sign(offset) * np.maximum(np.abs(offset) - _SEAM_TOLERANCE, 0)
    return result


def _smooth_along(profile: np.ndarray) -> np.ndarray:
    # A one-row image: the vertical pass of the Gaussian leaves it as it is.
    row = np.ascontiguousarray(profile[None], dtype=np.float32)
    smoothed: np.ndarray = cv2.GaussianBlur(row, (0, 0), _SEAM_SIGMA, borderType=cv2.BORDER_REFLECT)
    return smoothed.reshape(profile.shape)


def _fade(distance: np.ndarray) -> np.ndarray:
    t = np.clip(1 - distance / _SEAM_REACH, 0, 1)
    return t * t * (3 - 2 * t)

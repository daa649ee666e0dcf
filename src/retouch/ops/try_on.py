"""Try-on as one operation: a person and a garment in, the person wearing the garment out.

Pure functions on numpy arrays with the engines injected: ``pixels`` are uint8 RGB or RGBA, a
garment is uint8 RGBA whose alpha is the garment (straight alpha; >= 128 counts as garment).

Garment extraction and its surcharge: Pixelcut adds 5 credits when the garment image "needs
garment extraction" (worn by a person or among other objects), which cannot be told cheaply
from the pixels. The rule here: a garment image with transparency is already extracted and is
used as it is; one without is extracted (cut out by the segmenter) exactly when
``preprocess_garment`` is true, and that extraction is what is charged, so
``preprocess_garment and needs_extraction(pixels)`` decides the surcharge.
"""

from __future__ import annotations

import cv2
import numpy as np

from retouch.engines.base import Segmenter
from retouch.engines.tryon import TryOnEngine
from retouch.errors import InvalidParameter, UnknownForeground
from retouch.ops.cutout import cutout, subject_box
from retouch.ops.generate_background import has_transparency
from retouch.ops.remove_background import remove_background as cut_out_subject

GARMENT_MODES = ("auto", "upper", "lower", "full")

# ``auto`` (see ``resolve_mode``): a garment box taller than this many times its width is a
# dress (jumpsuits, with legs, from the second figure on), ...
_DRESS_ASPECT = 1.6
_JUMPSUIT_ASPECT = 2.4
# ... trousers have a gap at the box's middle column, with garment on both sides, in this
# share of the rows of the box's bottom third (shorts split that high too) ...
_LEGS_SHARE = 0.6
# ... and a skirt is this many times wider over its bottom quarter than its top quarter.
_SKIRT_FLARE = 1.2

# Without extraction, a garment photo whose border is this flat (median absolute deviation
# from its median colour, in levels) is keyed out; pixels within _KEY_TOLERANCE levels of that
# colour (largest channel difference) are background, fading to opaque at twice that.
_FLAT_BORDER = 6
_KEY_TOLERANCE = 20


def needs_extraction(garment_pixels: np.ndarray) -> bool:
    """Whether the garment would have to be cut out: it has no transparency (RGB, or RGBA
    opaque everywhere). Charged only when ``preprocess_garment`` asks for it."""
    return not has_transparency(garment_pixels)


def extract_garment(pixels: np.ndarray, *, segmenter: Segmenter) -> np.ndarray:
    """The garment cut out of its photo by ``segmenter``, as RGBA of the input's size.

    An input alpha channel is respected, as in remove-background. Raises ``UnknownForeground``
    when the segmenter finds nothing.
    """
    rgb = np.ascontiguousarray(pixels[..., :3])
    alpha = segmenter.mask(rgb)
    if pixels.shape[2] == 4:
        alpha = alpha * (pixels[..., 3].astype(np.float32) / 255)
    if subject_box(alpha) is None:
        raise UnknownForeground("No garment could be detected in the garment image")
    return cutout(rgb, alpha)


def garment_as_is(pixels: np.ndarray) -> np.ndarray:
    """The garment without extraction, as RGBA: an image with transparency keeps its alpha; an
    opaque one on a flat backdrop (a stock photo on white) has that backdrop keyed out, the
    pixels close to the border's colour and connected to the border; any other is opaque
    everywhere, the whole image being the garment."""
    if has_transparency(pixels):
        return np.ascontiguousarray(pixels)
    rgb = np.ascontiguousarray(pixels[..., :3])
    return np.dstack([rgb, _key_flat_backdrop(rgb)])


def _key_flat_backdrop(rgb: np.ndarray) -> np.ndarray:
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int16)
    backdrop = np.median(border, axis=0)
    opaque = np.full(rgb.shape[:2], 255, np.uint8)
    if np.median(np.abs(border - backdrop).max(axis=1)) > _FLAT_BORDER:
        return opaque
    distance = np.abs(rgb.astype(np.int16) - backdrop).max(axis=2)
    near = (distance < 2 * _KEY_TOLERANCE).astype(np.uint8)
    _, labels = cv2.connectedComponents(near, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    backdrop_px = np.isin(labels, edge[edge > 0])
    ramp = np.clip((distance - _KEY_TOLERANCE) * (255 / _KEY_TOLERANCE), 0, 255)
    return np.where(backdrop_px, ramp, opaque).astype(np.uint8)


def _garment_mask(garment: np.ndarray) -> np.ndarray:
    """The garment's pixels cropped to their box; ``UnknownForeground`` when there are none."""
    solid = garment[..., 3] >= 128
    box = subject_box(solid.astype(np.float32), min_fraction=0)
    if box is None:
        raise UnknownForeground("The garment image is fully transparent: there is no garment")
    return solid[box.top : box.bottom, box.left : box.right]


def resolve_mode(garment: np.ndarray, mode: str) -> str:
    """``mode`` with ``auto`` decided from the garment's silhouette (uint8 RGBA in):

    * two legs (a gap at the middle of the bottom third, see ``_LEGS_SHARE``): ``lower``
      (trousers, shorts), or ``full`` when more than ``_JUMPSUIT_ASPECT`` times as tall as wide
      (a jumpsuit);
    * else taller than ``_DRESS_ASPECT`` times its width: ``full`` (a dress);
    * else flaring, ``_SKIRT_FLARE`` times wider at the bottom than at the top: ``lower`` (a
      skirt);
    * else ``upper`` (shirts, jackets: the widest part, with the sleeves, is at the top).

    Raises ``InvalidParameter`` for an unknown mode and ``UnknownForeground`` for a garment with
    no opaque pixels.
    """
    if mode not in GARMENT_MODES:
        raise InvalidParameter(f"garment_mode must be one of {', '.join(GARMENT_MODES)}")
    solid = _garment_mask(garment)
    if mode != "auto":
        return mode
    h, w = solid.shape
    aspect = h / w
    bottom = solid[h - h // 3 :]
    middle = w // 2
    split = (
        ~bottom[:, middle] & bottom[:, :middle].any(axis=1) & bottom[:, middle + 1 :].any(axis=1)
    )
    if bottom.shape[0] and split.mean() >= _LEGS_SHARE:
        return "full" if aspect > _JUMPSUIT_ASPECT else "lower"
    if aspect > _DRESS_ASPECT:
        return "full"
    quarter = max(1, h // 4)
    widths = solid.sum(axis=1)
    if widths[-quarter:].mean() >= _SKIRT_FLARE * widths[:quarter].mean():
        return "lower"
    return "upper"


def try_on(
    person_pixels: np.ndarray,
    garment_pixels: np.ndarray,
    *,
    engine: TryOnEngine,
    segmenter: Segmenter,
    mode: str,
    preprocess_garment: bool,
    remove_background: bool,
    seed: int,
) -> np.ndarray:
    """The person in ``person_pixels`` wearing the garment in ``garment_pixels`` (uint8 RGB or
    RGBA each): uint8 RGB of the person image's size, or RGBA with ``remove_background``.

    A person image with transparency is flattened onto white first (Pixelcut works on JPEG). The
    garment is extracted or used as it is by the rule in this module's docstring, ``mode``
    (``garment_mode``) resolved by ``resolve_mode``, and ``engine`` dresses the person.
    ``remove_background`` (documented only as "When true, the …") is read as removing the
    result's background: the dressed person is cut out by ``segmenter``, as remove-background
    would, on transparency.
    """
    person = flatten(person_pixels)
    if preprocess_garment and needs_extraction(garment_pixels):
        garment = extract_garment(garment_pixels, segmenter=segmenter)
    else:
        garment = garment_as_is(garment_pixels)
    resolved = resolve_mode(garment, mode)
    dressed = engine.dress(person, garment, mode=resolved, seed=seed)
    if not remove_background:
        return dressed
    return cut_out_subject(dressed, segmenter=segmenter)


def flatten(pixels: np.ndarray) -> np.ndarray:
    """A person image as uint8 RGB: one with transparency flattened onto white."""
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels)
    alpha = pixels[..., 3:].astype(np.float32) / 255
    return np.round(pixels[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)

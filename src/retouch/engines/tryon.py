"""Virtual try-on engines (dress a person in a garment) and the registry the app picks one from.

``geometric`` (the default) needs no generative weights and no pose model: it reads the body's
landmarks off the person's silhouette, warps the garment onto the body region the mode names
and relights it with the person's own shading. ``diffusion`` repaints the same region with a
local diffusers inpainting pipeline (see ``retouch.engines.diffusion``).

Silhouette geometry (``body_geometry``); rows count down from the image's top and "the figure's
height" is the silhouette's, or, when it runs off the bottom of the image, at least the height
the head-to-shoulder distance implies (shoulders at 18% of a standing figure's height):

* silhouette: the segmenter's alpha > 0.5, its largest connected part;
* trunk: traced down from the head top, row by row, as the run of silhouette pixels containing
  the previous row's trunk centre (the first row starts from the silhouette's median column).
  Arms hanging with a gap beside the torso are not trunk; arms touching it are;
* shoulder line: the first row, past the top 8% of the figure (the crown of the head, where
  the width doubles from row to row), whose trunk is at least 1.4 times as wide as every row
  above it: the width jumps from the neck to the shoulders. Nothing above it is ever painted.
  Without such a jump the figure starts at the shoulders if it is cut off at the image's top,
  else they are put at 18% of its height;
* crotch: the first row below the shoulders where the trunk centre leaves the silhouette and
  stays out for 2% of the figure's height: the gap between the legs. From there down the trunk
  is every run overlapping the columns of the row above the crotch, so both legs and the gap
  between them, but not hands hanging beside the thighs. Without a gap (a long skirt) it is at
  48% of the figure's height and the trunk stays one run;
* waist: the narrowest trunk row 50..85% of the way from shoulders to crotch when that is a
  true waist: not in the outer tenth of that band at either end (a torso narrowing all the
  way down) and 5% narrower than its widest row (a straight one), else 68% of the way;
* hips: 60% of the way from waist to crotch;
* ankles: 4% of the figure's height above its soles, so shoes are left alone. When the figure
  runs off the image's bottom this row may lie below the image: the garment is then laid out
  over the whole estimated region and cut off by the frame, rather than squeezed into it.

Body region per mode: ``upper`` shoulders to hips, ``lower`` waist to ankles, ``full`` shoulders
to ankles; in each row the trunk's columns, and only silhouette pixels are ever painted.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from retouch.engines.base import Segmenter
from retouch.engines.diffusion import DiffusionInpainter
from retouch.errors import UnknownForeground

MODES = ("upper", "lower", "full")

# The silhouette rules of the module docstring, as shares of the figure's height, the
# shoulders-to-crotch distance and the waist-to-crotch distance; canon figures are fallbacks.
_CROWN = 0.08
_SHOULDER_JUMP = 1.4
_CANON_SHOULDER = 0.18
_CANON_CROTCH = 0.48
_CROTCH_GAP = 0.02
# Below the shoulders the trunk's centre follows its run only while the run's centre moves by
# at most this share of its width per row (a lean, or an arm parting from the torso; a notch
# at the top of the legs' gap would halve the run and drag the centre onto one leg).
_SPLIT = 0.15
_WAIST_BAND = (0.5, 0.85)
_WAIST_NARROWING = 0.95
_CANON_WAIST = 0.68
_HIPS = 0.6
_CANON_FEET = 0.04
# A garment row wider than this many times the narrowest row below it is a sleeve row: only
# that narrowest width is fitted to the body, so sleeves reach past the torso onto the arms.
# Below the factor, a row is a body part of the garment (a bust over a fitted waist).
_SLEEVE_FLARE = 1.25
# Garment edge feathering (Gaussian sigma) per pixel of the image's long side, with a floor.
_FEATHER = 0.002
_MIN_FEATHER = 0.6
# The person's luminance is compared with its local level (see ``_level``) over this share of
# the trunk's width: folds and shadows up to about half that wide carry over to the garment.
_SHADING_SPAN = 0.4
# The shading factor's range: outside it the person's own clothing edges (a dark belt, a white
# collar) would print onto the garment as black or blown-out bands.
_SHADE_RANGE = (0.35, 1.5)

# Words for the diffusion prompt; the colour is the garment's median colour, named.
_GARMENT_WORDS = {"upper": "top", "lower": "trousers", "full": "dress"}
_NEGATIVE_PROMPT = "text, watermark, logo, blurry, low quality, deformed, extra limbs"


class TryOnEngine(Protocol):
    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        """``person`` (uint8 HxWx3) wearing ``garment``: uint8 HxWx3 of the person's size.

        ``garment`` is uint8 RGBA, already cut out (its alpha is the garment); ``mode`` is
        ``"upper"``, ``"lower"`` or ``"full"`` (``auto`` is resolved by the caller). Raises
        ``UnknownForeground`` when no person is found. Must be safe to call from several threads
        at once; the same inputs and ``seed`` give the same output.
        """
        ...


@dataclass(frozen=True, eq=False)
class Body:
    """Landmark rows of a standing, front-facing figure and its trunk's columns per row.

    ``left[y]:right[y]`` are the trunk's columns in image row ``y`` (both -1 where the row has
    no trunk). Each landmark is a row index, and a region ends one row before its last
    landmark; ``ankle`` lies below the image when the figure runs off its bottom.
    """

    top: int
    shoulder: int
    waist: int
    hips: int
    crotch: int
    ankle: int
    left: np.ndarray
    right: np.ndarray

    def rows(self, mode: str) -> tuple[int, int]:
        """The first row and one past the last that ``mode`` dresses."""
        if mode == "upper":
            return self.shoulder, self.hips
        if mode == "lower":
            return self.waist, self.ankle
        if mode == "full":
            return self.shoulder, self.ankle
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def silhouette(alpha: np.ndarray) -> np.ndarray:
    """The largest connected part of ``alpha > 0.5``, as bool HxW (other people, props and the
    segmenter's specks are not the person being dressed)."""
    fg = (alpha > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count < 2:
        return fg.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _runs(row: np.ndarray) -> np.ndarray:
    """The runs of True in a bool row, as an (n, 2) int array of ``[start, stop)`` columns."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
    return edges.reshape(-1, 2)


def _spanning(runs: np.ndarray, start: int, stop: int) -> tuple[int, int]:
    """From the first to the last of the runs overlapping columns ``start:stop``; ``(-1, -1)``
    when none does."""
    over = runs[(runs[:, 1] > start) & (runs[:, 0] < stop)]
    if over.size == 0:
        return -1, -1
    return int(over[0, 0]), int(over[-1, 1])


def body_geometry(mask: np.ndarray) -> Body | None:
    """The landmarks of the figure in ``mask`` (bool HxW, one connected silhouette), by the rules
    in this module's docstring; None for an empty mask."""
    h = mask.shape[0]
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    crown = top + _CROWN * (bottom - top)
    gap = max(2, round(_CROTCH_GAP * (bottom - top)))
    left, right = np.full(h, -1), np.full(h, -1)
    centre = float(np.median(np.nonzero(mask)[1]))
    widest, shoulder, crotch = 0, None, None
    hip: tuple[int, int] = (0, 0)
    for y in range(top, bottom):
        runs = _runs(mask[y])
        if runs.size == 0:
            continue
        if crotch is None:
            col = int(centre)
            inside = runs[(runs[:, 0] <= col) & (runs[:, 1] > col)]
            if inside.size:
                start, stop = inside[0]
                if shoulder is None or abs((start + stop) / 2 - centre) <= _SPLIT * (stop - start):
                    centre = (start + stop) / 2
                else:
                    # Off-centre: the onset of the legs' gap, or a hole; the trunk is still
                    # all of it.
                    start, stop = _spanning(runs, int(left[y - 1]), int(right[y - 1]))
            elif shoulder is None:
                # A tilted head may leave the column: follow the nearest run.
                start, stop = runs[np.argmin(np.maximum(runs[:, 0] - col, col + 1 - runs[:, 1]))]
                centre = (start + stop) / 2
            elif not mask[y : y + gap, col].any():
                crotch, hip = y, (int(left[y - 1]), int(right[y - 1]))
            else:
                start, stop = _spanning(runs, int(left[y - 1]), int(right[y - 1]))
            if crotch is None:
                left[y], right[y] = start, stop
                if shoulder is None and y >= crown and stop - start >= _SHOULDER_JUMP * widest:
                    shoulder = y
                widest = max(widest, stop - start)
                continue
        left[y], right[y] = _spanning(runs, *hip)

    figure = bottom - top
    if shoulder is None:
        shoulder = top if top == 0 else top + round(_CANON_SHOULDER * figure)
    elif bottom == h:
        figure = max(figure, round((shoulder - top) / _CANON_SHOULDER))
    if crotch is None:
        crotch = min(bottom, top + round(_CANON_CROTCH * figure))
    crotch = max(crotch, shoulder + 1)
    waist = _waist(left, right, shoulder, crotch)
    hips = waist + round(_HIPS * (crotch - waist))
    ankle = top + round((1 - _CANON_FEET) * figure)
    return Body(top, shoulder, waist, max(hips, waist + 1), crotch, max(ankle, crotch), left, right)


def _waist(left: np.ndarray, right: np.ndarray, shoulder: int, crotch: int) -> int:
    torso = crotch - shoulder
    lo, hi = (shoulder + round(f * torso) for f in _WAIST_BAND)
    widths = (right - left)[lo:hi]
    if widths.size:
        widths = np.where(left[lo:hi] >= 0, widths, widths.max())  # a row without trunk
    i = int(np.argmin(widths)) if widths.size else 0
    edge = widths.size // 10
    if edge <= i < widths.size - edge and widths[i] <= _WAIST_NARROWING * widths.max():
        return lo + i
    return shoulder + round(_CANON_WAIST * torso)


def find_body(segmenter: Segmenter, person: np.ndarray) -> tuple[np.ndarray, np.ndarray, Body]:
    """The person's alpha (float32 HxW), silhouette (bool HxW) and landmarks.

    Raises ``UnknownForeground`` when the segmenter finds nobody.
    """
    alpha = segmenter.mask(person)
    mask = silhouette(alpha)
    body = body_geometry(mask)
    if body is None:
        raise UnknownForeground("No person could be detected in the person image")
    return alpha, mask, body


def clothing_region(mask: np.ndarray, body: Body, mode: str) -> np.ndarray:
    """Bool HxW: the silhouette pixels within the trunk's columns in the rows ``mode`` dresses."""
    start, stop = body.rows(mode)
    cols = np.arange(mask.shape[1])
    region = np.zeros_like(mask)
    ys = slice(start, stop)
    region[ys] = (cols >= body.left[ys, None]) & (cols < body.right[ys, None])
    return region & mask


def _check(person: np.ndarray, garment: np.ndarray, mode: str) -> None:
    if person.dtype != np.uint8 or person.ndim != 3 or person.shape[2] != 3:
        raise ValueError(f"person must be uint8 HxWx3, got {person.dtype} {person.shape}")
    if garment.dtype != np.uint8 or garment.ndim != 3 or garment.shape[2] != 4:
        raise ValueError(f"garment must be uint8 HxWx4, got {garment.dtype} {garment.shape}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not (garment[..., 3] >= 128).any():
        raise ValueError("the garment has no opaque pixels")


class GeometricTryOn:
    """Warps the garment onto the body region and relights it; no generative model.

    The garment's box (alpha >= 128) is scaled to the region's height, top to top and bottom to
    bottom (cut off by the frame when the region runs off the image). Each garment row's width
    (sleeves discounted, see ``_SLEEVE_FLARE``) is then fitted to the trunk's width in the body
    row it lands on, centre on centre: a per-row horizontal stretch, so the garment follows the
    shoulders, waist and legs. Its alpha is the warped garment alpha, feathered, times the
    person's alpha, so nothing outside the person (and nothing above the region's first row)
    changes. Its colour is the garment's times the person's luminance over its local level in
    the painted area (``_level``): folds and shadows of the person's clothes shade the new
    garment; broad lighting gradients are mostly lost. ``seed`` is unused: the result is
    deterministic.
    """

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        _check(person, garment, mode)
        alpha, mask, body = find_body(self.segmenter, person)
        start, stop = body.rows(mode)
        h, w = mask.shape
        painted = _warp(garment, body, start, stop, w)
        if painted is None:
            return person.copy()
        (x0, x1), colour, cover = painted
        end = min(stop, h)
        box = np.s_[start:end, x0:x1]
        cover = cv2.GaussianBlur(cover, (0, 0), max(_MIN_FEATHER, _FEATHER * max(h, w)))
        # The silhouette's 1 px rim keeps the edge anti-aliased; the segmenter's faint haze
        # beyond it (in the narrow gap between the legs) is not the person.
        rim = cv2.dilate(mask[box].astype(np.uint8), np.ones((3, 3), np.uint8))
        cover *= alpha[box] * rim
        trunk = (body.right - body.left)[start:end]
        span = _SHADING_SPAN * float(np.median(trunk[trunk > 0]))
        source = person[box].astype(np.float32)
        luminance = source @ np.float32([0.299, 0.587, 0.114])
        shade = luminance / np.maximum(_level(luminance, cover, span), 1.0)
        shade = np.clip(shade, *_SHADE_RANGE)
        a = cover[..., None]
        blend = source * (1 - a) + np.minimum(colour * shade[..., None], 255) * a
        out = person.copy()
        touched = cover > 0
        out[box][touched] = np.rint(blend[touched]).astype(np.uint8)
        return out


def _garment_rows(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per garment row: the centre of its extent and the width to fit to the body (sleeves
    discounted). Rows without opaque pixels (a gap between straps) take their neighbours'."""
    # A garment thinner than the shrink factor may have no pixel left at 128: take its densest.
    solid = alpha >= min(128.0, float(alpha.max()))
    w = solid.shape[1]
    filled = np.flatnonzero(solid.any(axis=1))
    first = np.argmax(solid, axis=1)[filled]
    stop = w - np.argmax(solid[:, ::-1], axis=1)[filled]
    rows = np.arange(solid.shape[0])
    first, stop = np.interp(rows, filled, first), np.interp(rows, filled, stop)
    width = stop - first
    narrowest_below = np.minimum.accumulate(width[::-1])[::-1]
    return (first + stop) / 2, np.minimum(width, _SLEEVE_FLARE * narrowest_below)


def _warp(
    garment: np.ndarray, body: Body, start: int, stop: int, width: int
) -> tuple[tuple[int, int], np.ndarray, np.ndarray] | None:
    """The garment warped onto rows ``start:stop`` (``stop`` may lie below the image, whose
    rows alone are drawn): the columns ``(x0, x1)`` it may cover, its straight colour (float32
    Hx(x1-x0)x3) and alpha (float32, 0..1) there; None when the body has no trunk there."""
    ys = np.arange(start, min(stop, len(body.left)))
    left, right = body.left[ys], body.right[ys]
    if stop <= start or not (left >= 0).any():
        return None
    solid = np.argwhere(garment[..., 3] >= 128)
    (g0, f0), (g1, f1) = solid.min(axis=0), solid.max(axis=0) + 1
    crop = garment[g0:g1, f0:f1].astype(np.float32) / 255
    crop[..., :3] *= crop[..., 3:]  # premultiplied, so transparent colours never bleed in
    # Resampled to about the region's height first: remap alone would alias a large garment.
    factor = (stop - start) / crop.shape[0]
    size = (max(1, round(crop.shape[1] * factor)), stop - start)
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    gh, gw = crop.shape[:2]
    centre, fit = _garment_rows(crop[..., 3] * 255)

    # Output row i shows garment row i: the crop has the region's height.
    v = np.arange(len(ys), dtype=np.float32)
    vi = np.minimum(v.astype(int), gh - 1)
    has = left >= 0
    scale = np.where(has, fit[vi] / np.maximum(right - left, 1), 1.0)  # garment px per body px
    mid = (left + right) / 2
    reach_lo = (mid - centre[vi] / scale)[has]
    reach_hi = (mid + (gw - centre[vi]) / scale)[has]
    x0, x1 = max(0, int(reach_lo.min())), min(width, int(np.ceil(reach_hi.max())) + 1)
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    map_x = centre[vi, None] + (xs[None, :] - mid[:, None]) * scale[:, None] - 0.5
    map_x[~has] = -2  # off the garment: transparent
    map_y = np.broadcast_to(v[:, None], map_x.shape)
    warped = cv2.remap(
        crop,
        map_x.astype(np.float32),
        np.ascontiguousarray(map_y, dtype=np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    cover = np.ascontiguousarray(warped[..., 3])
    colour = warped[..., :3] / np.maximum(cover, 1e-6)[..., None] * 255
    return (x0, x1), colour, cover


def _level(luminance: np.ndarray, weight: np.ndarray, span: float) -> np.ndarray:
    """The local level of ``luminance`` where ``weight`` > 0: its median over a window ``span``
    px wide, taken at a size where that window is about 25 px and resized back.

    A median rather than a mean: it steps with a step (a shirt tucked into darker trousers, a
    sleeve ending on skin), so those edges do not leave bright and dark halos on the garment,
    while anything narrower than half the window (a fold, a shadow) stands out from it. Pixels
    outside the weight are first filled with the weighted mean around them, so the background
    does not pull the level down at the silhouette's edge.
    """
    h, w = luminance.shape
    f = max(1.0, span / 25)
    small = (max(1, round(w / f)), max(1, round(h / f)))
    lum = cv2.resize(luminance, small, interpolation=cv2.INTER_AREA)
    inside = cv2.resize(weight, small, interpolation=cv2.INTER_AREA)
    k = 2 * max(1, round(span / f / 2)) + 1
    num = cv2.GaussianBlur(lum * inside, (0, 0), k / 2)
    mean = num / np.maximum(cv2.GaussianBlur(inside, (0, 0), k / 2), 1e-6)
    filled = np.where(inside > 0.5, lum, mean)
    level = cv2.medianBlur(np.clip(np.rint(filled), 0, 255).astype(np.uint8), k)
    return cv2.resize(level.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def colour_name(rgb: tuple[float, float, float]) -> str:
    """A plain English name for an RGB colour (0..255), from its hue, saturation and value."""
    hue, sat, val = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    if val < 0.2:
        return "black"
    if sat < 0.15:
        return "white" if val > 0.8 else "grey"
    degrees = hue * 360
    if degrees < 15 or degrees >= 345:
        return "red"
    if degrees < 40:
        return "brown" if val < 0.6 else "orange"
    for limit, name in (
        (70, "yellow"),
        (165, "green"),
        (200, "teal"),
        (255, "blue"),
        (290, "purple"),
    ):
        if degrees < limit:
            return name
    return "pink"


class DiffusionTryOn:
    """Repaints the body region with a diffusers inpainting pipeline, prompted with the
    garment's colour and kind ("a person wearing a red top"); the garment's own pixels are not
    shown to the model. The region is ``clothing_region`` of the same silhouette geometry as
    ``GeometricTryOn``; pixels outside it are the person's own.
    """

    def __init__(
        self, weights_path: Path, *, segmenter: Segmenter, threads: int, steps: int = 25
    ) -> None:
        self.segmenter = segmenter
        self.inpainter = DiffusionInpainter(weights_path, threads=threads, steps=steps)

    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        _check(person, garment, mode)
        _, mask, body = find_body(self.segmenter, person)
        region = clothing_region(mask, body, mode)
        if not region.any():
            return person.copy()
        opaque = garment[..., 3] >= 128
        colour = colour_name(tuple(np.median(garment[opaque][:, :3], axis=0)))
        # ``background`` is the inpainter's prompted path: it repaints wherever the canvas is
        # not opaque and keeps every other pixel.
        canvas = np.dstack([person, np.where(region, 0, 255).astype(np.uint8)])
        return self.inpainter.background(
            canvas,
            scene=None,
            prompt=f"a person wearing a {colour} {_GARMENT_WORDS[mode]}",
            negative_prompt=_NEGATIVE_PROMPT,
            seed=seed,
        )


@dataclass(frozen=True)
class TryOnConfig:
    """Everything a try-on factory may need; each takes what applies to it."""

    segmenter: Segmenter
    threads: int
    weights_path: Path | None = None
    steps: int = 25


def _diffusion(config: TryOnConfig) -> TryOnEngine:
    if config.weights_path is None:
        raise ValueError(
            "the 'diffusion' try-on engine needs a weights path (a local diffusers folder)"
        )
    return DiffusionTryOn(
        config.weights_path, segmenter=config.segmenter, threads=config.threads, steps=config.steps
    )


DEFAULT_TRY_ON_ENGINE = "geometric"

TRY_ON_ENGINES: dict[str, Callable[[TryOnConfig], TryOnEngine]] = {
    "geometric": lambda config: GeometricTryOn(config.segmenter),
    "diffusion": _diffusion,
}


def create_try_on_engine(
    name: str,
    *,
    segmenter: Segmenter,
    threads: int,
    weights_path: Path | None = None,
    steps: int = 25,
) -> TryOnEngine:
    """The try-on engine registered under ``name``, loaded. ``segmenter`` finds the person (and
    is shared, not copied); ``threads``, ``weights_path`` and ``steps`` apply to ``diffusion``
    only: ``geometric`` runs on the calling thread alone."""
    try:
        factory = TRY_ON_ENGINES[name]
    except KeyError:
        raise ValueError(
            f"unknown try-on engine {name!r}; known: {', '.join(sorted(TRY_ON_ENGINES))}"
        ) from None
    return factory(
        TryOnConfig(segmenter=segmenter, threads=threads, weights_path=weights_path, steps=steps)
    )

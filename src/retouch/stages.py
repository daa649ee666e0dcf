"""Per-stage timers for one request's CPU work, collected only when asked for.

Where a request's CPU goes (decode, model, refinement, encode...) decides what is worth making
faster, and a sampling profiler attached to a loaded server is heavy and noisy. These timers cost
two clock reads per stage and nothing at all unless a caller opened ``collect()`` on the thread
doing the work: stages elsewhere (the batch CLI, tests) run untimed.

Each stage records the wall time and the calling thread's CPU time. ONNX Runtime's extra
intra-op threads, and OpenVINO's stream threads (which do all of its work), are not the calling
thread, so such a model run shows more wall than CPU; the ``threads`` a stage reports lets a
reader see that, and the bench counts the rest from the process's own CPU time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StageTimes:
    """Seconds per stage, in the order the stages first ran."""

    cpu: dict[str, float] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)
    threads: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, cpu: float, wall: float, threads: int) -> None:
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.threads[name] = max(self.threads.get(name, 1), threads)

    def as_log(self) -> dict[str, dict[str, float]]:
        """Milliseconds per stage, for one structured log line."""
        return {
            name: {
                "cpu_ms": round(self.cpu[name] * 1000, 2),
                "wall_ms": round(self.wall[name] * 1000, 2),
                "threads": self.threads[name],
            }
            for name in self.cpu
        }


_local = threading.local()


@contextmanager
def collect() -> Iterator[StageTimes]:
    """Time every ``stage`` this thread runs until the block ends."""
    times = StageTimes()
    previous = getattr(_local, "times", None)
    _local.times = times
    try:
        yield times
    finally:
        _local.times = previous


@contextmanager
def stage(name: str, *, threads: int = 1) -> Iterator[None]:
    """Count the block as stage ``name`` when this thread collects; else do nothing."""
    times: StageTimes | None = getattr(_local, "times", None)
    if times is None:
        yield
        return
    cpu, wall = time.thread_time(), time.perf_counter()
    try:
        yield
    finally:
        times.add(name, time.thread_time() - cpu, time.perf_counter() - wall, threads)

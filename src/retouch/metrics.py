"""Prometheus metrics, on their own registry (one per app, so tests and several apps in one
process never collide).

With `retouch serve --workers N` the processes share one socket, so a scrape reaches any one of
them; they keep their numbers in prometheus_client's multiprocess files instead (the CLI points
``PROMETHEUS_MULTIPROC_DIR`` at ``multiprocess_dir`` before the workers start) and every scrape
answers the sum over all of them.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "retouch_http_requests",
            "HTTP requests by route and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "retouch_http_request_duration_seconds",
            "Time from request to response, by route.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.credits = Counter(
            "retouch_credits_charged",
            "Credits charged for successful operations, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.operation = Histogram(
            "retouch_operation_seconds",
            "CPU work of one image operation (decode, model inference, encode), by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "retouch_work_queue_depth",
            "Image operations admitted to the CPU pool (running or waiting).",
            # Summed over the processes alive; ignored outside multiprocess mode.
            multiprocess_mode="livesum",
            registry=self.registry,
        )

    def render(self) -> bytes:
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        # prometheus_client leaves MultiProcessCollector.__init__ unannotated.
        MultiProcessCollector(merged, path=str(self._multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

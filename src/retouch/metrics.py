"""Prometheus metrics of one process, on their own registry (one per app, so tests and
several apps in one process never collide).

With `retouch serve --workers N` each process has its own numbers; scrape them per process
(one worker per container is the usual topology), or aggregate at the collector.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
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
            registry=self.registry,
        )

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)

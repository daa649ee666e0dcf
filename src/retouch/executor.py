"""One bounded pool for all CPU work (decoding, inference, encoding), off the event loop.

The pool has as many threads as the machine has cores to give, and the number of tasks admitted
(running plus waiting) is capped: past the cap a request is refused with 429 at once instead of
queueing images in memory without bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from retouch.errors import ServerBusy

P = ParamSpec("P")
T = TypeVar("T")


class BoundedExecutor:
    def __init__(
        self,
        *,
        threads: int,
        max_pending: int,
        on_pending: Callable[[int], None] = lambda _: None,
    ) -> None:
        """``on_pending`` hears every change of the admitted count (a metrics gauge)."""
        self.threads = threads
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retouch-cpu")
        self._lock = threading.Lock()
        self._pending = 0
        self._on_pending = on_pending

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            if self._pending >= self.max_pending:
                raise ServerBusy(headers={"Retry-After": "1"})
            self._pending += 1
            self._on_pending(self._pending)

        def task() -> T:
            # Counted down in the worker, not the awaiting coroutine: a client that disconnects
            # cancels its await, but the work still occupies the pool until it finishes.
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._on_pending(self._pending)

        return await asyncio.get_running_loop().run_in_executor(self._pool, task)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

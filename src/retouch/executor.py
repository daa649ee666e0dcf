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

from retouch.errors import ClientDisconnected, ServerBusy

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
        return await self.run_unless(None, fn, *args, **kwargs)

    async def run_unless(
        self, gone: asyncio.Event | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn`` in the pool unless ``gone`` (its client hung up) is set before a thread
        starts it: then it never runs and ``ClientDisconnected`` is raised, so that the caller
        refunds. Work already started runs to the end and its result is returned."""
        if gone is not None and gone.is_set():
            raise ClientDisconnected()
        with self._lock:
            if self._pending >= self.max_pending:
                raise ServerBusy(headers={"Retry-After": "1"})
            self._pending += 1
            self._on_pending(self._pending)

        def task() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                self._count_down()

        future = self._pool.submit(task)
        waiter = asyncio.wrap_future(future)
        try:
            if gone is not None:
                await _first(waiter, gone)
                if not waiter.done() and future.cancel():
                    self._count_down()  # its task never runs to do it
                    raise ClientDisconnected()
            return await waiter
        except asyncio.CancelledError:
            # The await was cancelled (a server stopping): work not started is dropped with
            # it; work started still occupies the pool, and counts itself down, until it ends.
            if future.cancel():
                self._count_down()
            raise

    def _count_down(self) -> None:
        with self._lock:
            self._pending -= 1
            self._on_pending(self._pending)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


async def _first(waiter: asyncio.Future[T], gone: asyncio.Event) -> None:
    """Wait until ``waiter`` is done or ``gone`` is set, whichever comes first."""
    watcher = asyncio.ensure_future(gone.wait())
    try:
        await asyncio.wait((waiter, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()

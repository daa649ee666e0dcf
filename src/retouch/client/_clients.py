"""The sync and async clients: each only sends requests and sleeps as the shared flow says."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx

from retouch.client._endpoints import Endpoints
from retouch.client._retry import Outcome, Pause, RetryPolicy, attempts
from retouch.client._wire import Call, Result

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
PIXELCUT_BASE_URL = "https://api.developer.pixelcut.ai"
DEFAULT_TIMEOUT = 60.0


def _headers(api_key: str) -> dict[str, str]:
    return {"X-API-KEY": api_key, "User-Agent": f"retouch-python/{version('retouch')}"}


class RetouchClient(Endpoints[int, Result]):
    """A blocking client for Retouch, or for Pixelcut with ``base_url=PIXELCUT_BASE_URL``.

    Calls answered 429 or 5xx, or lost to a timeout or dropped connection, are tried again up to
    ``max_tries`` times in all, with exponential backoff and jitter and never sooner than the
    server's ``Retry-After``. ``sleep`` is how it waits between tries (replaceable in tests).
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_tries: int = 5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._policy = RetryPolicy(max_tries=max_tries)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def _run(self, call: Call[T]) -> T:
        flow = attempts(call.build(self._http), call.parse, self._policy)
        step = next(flow)
        while True:
            outcome = self._perform(step)
            try:
                step = flow.send(outcome)
            except StopIteration as done:
                result: T = done.value
                return result

    def _perform(self, step: httpx.Request | Pause) -> Outcome | None:
        if isinstance(step, Pause):
            self._sleep(step.seconds)
            return None
        try:
            return self._http.send(step)
        except httpx.TransportError as exc:
            return exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRetouchClient(Endpoints[Awaitable[int], Awaitable[Result]]):
    """The same client for asyncio or trio: every method returns an awaitable.

    ``sleep`` is awaited between tries (``anyio.sleep`` unless replaced).
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_tries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ) -> None:
        self._policy = RetryPolicy(max_tries=max_tries)
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def _run(self, call: Call[T]) -> T:
        flow = attempts(call.build(self._http), call.parse, self._policy)
        step = next(flow)
        while True:
            outcome = await self._perform(step)
            try:
                step = flow.send(outcome)
            except StopIteration as done:
                result: T = done.value
                return result

    async def _perform(self, step: httpx.Request | Pause) -> Outcome | None:
        if isinstance(step, Pause):
            await self._sleep(step.seconds)
            return None
        try:
            return await self._http.send(step)
        except httpx.TransportError as exc:
            return exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

"""When to try a call again and how long to wait, as a generator both clients drive.

The flow yields the request to send or a ``Pause`` to sleep, and is sent back each send's
outcome (the response, or the transport error): the sans-I/O shape of httpx's own auth flows, so
the sync client drives it with ``Client.send`` and ``time.sleep`` and the async one with
``AsyncClient.send`` and ``anyio.sleep``, and the retry rules exist once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

import httpx

from retouch.client._wire import api_error, retry_after
from retouch.client.errors import RetouchConnectionError

T = TypeVar("T")


@dataclass(frozen=True)
class Pause:
    seconds: float


Outcome = httpx.Response | httpx.TransportError
Flow = Generator[httpx.Request | Pause, Outcome | None, T]

# Failures where trying again can help. The rest (an unsupported URL scheme, a bad proxy
# setting) would fail the same way every time.
_TRANSIENT_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """Pixelcut's guide: delay = min(5 s, 250 ms * 2^retry + up to 250 ms), at most 5 tries;
    never sooner than the server's ``Retry-After``."""

    max_tries: int = 5
    base_delay: float = 0.25
    max_delay: float = 5.0
    jitter: float = 0.25
    # A server asking for a longer wait is not having a blip: the caller gets the error now
    # rather than a call that hangs for minutes.
    max_retry_after: float = 60.0
    uniform: Callable[[float, float], float] = random.uniform

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries must be at least 1")

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first)."""
        wait: float = min(self.max_delay, self.base_delay * 2**retry + self.uniform(0, self.jitter))
        return wait

    def delay(self, tries: int, outcome: Outcome) -> float | None:
        """Seconds to wait before another try after ``tries`` tries, or None if this is final.

        Retried: 429 and 5xx, 409 ``idempotency_key_in_use`` (this call's own earlier try, cut
        off by a timeout, is still running; its result will be replayed) and transient transport
        errors, which are safe because every POST carries an ``Idempotency-Key``.
        """
        if tries >= self.max_tries:
            return None
        wait = self.backoff(tries - 1)
        if isinstance(outcome, httpx.TransportError):
            return wait if isinstance(outcome, _TRANSIENT_TRANSPORT) else None
        if not _retryable(outcome):
            return None
        asked = retry_after(outcome)
        if asked is None:
            return wait
        return max(wait, asked) if asked <= self.max_retry_after else None


def _retryable(response: httpx.Response) -> bool:
    status = response.status_code
    if status == 429 or status >= 500:
        return True
    return status == 409 and api_error(response).error_code == "idempotency_key_in_use"


def attempts(
    request: httpx.Request, parse: Callable[[httpx.Response], T], policy: RetryPolicy
) -> Flow[T]:
    """Send ``request`` until an outcome is final, then parse it (raising the API's errors)."""
    tries = 0
    while True:
        outcome = yield request
        assert outcome is not None, "the driver answers every request with its outcome"
        tries += 1
        wait = policy.delay(tries, outcome)
        if wait is None:
            break
        yield Pause(wait)
    if isinstance(outcome, httpx.TransportError):
        raise RetouchConnectionError(
            f"{request.method} {request.url} failed after {tries} tries: {outcome!r}"
        ) from outcome
    return parse(outcome)

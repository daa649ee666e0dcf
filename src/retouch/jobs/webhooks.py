"""Webhooks: POST a finished job's document to the URL its request named.

Beyond Pixelcut, a job request may carry ``webhook_url``. When the job completes or fails, Retouch
POSTs the same JSON document ``GET /v1/try-on/job/{job_id}`` returns (keys sorted, no spaces) with
these headers:

- ``Retouch-Event``: ``job.completed`` or ``job.failed``.
- ``Retouch-Delivery``: a UUID, the same on every retry of one delivery; use it to drop duplicates.
- ``Retouch-Signature``: ``t=<unix seconds>,v1=<hex>``, where ``<hex>`` is the HMAC-SHA256, keyed
  with the webhook secret, of the timestamp, a period and the raw body: ``f"{t}.".encode() + body``.

To verify, recompute the HMAC over the body exactly as received, compare it in constant time with
every ``v1`` value, and reject a timestamp more than five minutes from your clock, which stops an
old delivery being replayed. ``verify`` below does all three. Each attempt is signed afresh, so a
late retry still carries a current timestamp.

Any 2xx response counts as delivered; redirects are not followed. Connection errors, timeouts, 429
and 5xx are retried with exponential backoff and jitter (honouring ``Retry-After``, up to a minute);
other responses end the delivery. Like image URLs, webhook URLs may only reach public addresses
unless the operator allows a private network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from retouch.errors import InvalidParameter
from retouch.fetch import (
    BlockedAddress,
    GuardedTransport,
    IPNetwork,
    PublicOnlyBackend,
    parse_http_url,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Retouch-Signature"
MAX_URL_LENGTH = 2048
MAX_DELAY = 60.0


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Retouch-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: bytes, header: str, body: bytes, *, now: float, tolerance: float = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of ``now``."""
    timestamp: int | None = None
    signatures: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdecimal():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.encode())  # as bytes: compare_digest refuses non-ASCII str
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body).encode()
    # Check every v1 without stopping early, so timing says nothing about which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    return any(matches)


def validate_webhook_url(url: str) -> str:
    """``url`` if it can be a webhook target; InvalidParameter naming ``webhook_url`` otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidParameter(f"webhook_url must be at most {MAX_URL_LENGTH} characters")
    parse_http_url(url, "webhook_url")
    return url


async def deliver(
    url: str,
    document: dict[str, Any],
    *,
    secret: bytes,
    allowed_networks: Sequence[IPNetwork] = (),
    attempts: int = 5,
    timeout: float = 10,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    backoff_base: float = 1.0,
    delivery_id: str | None = None,
) -> bool:
    """POST ``document`` to ``url``, retrying transient failures; True once a 2xx came back.

    Never raises for a failed delivery: the job has already finished, so a warning is all that is
    left to do. ``delivery_id`` (default: a new one) is the ``Retouch-Delivery`` header, so a
    delivery resumed after a crash carries the id its first tries did. ``sleep`` is injectable
    so tests need not wait out the backoff.
    """
    job = document.get("job_id")
    try:
        validate_webhook_url(url)
    except InvalidParameter as exc:
        logger.warning("job %s webhook not sent: %s", job, exc.message)
        return False
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "Retouch-Event": f"job.{document['status']}",
        "Retouch-Delivery": delivery_id or str(uuid.uuid4()),
    }
    # Log the host only: webhook URLs often carry a token in their path or query.
    where = f"job {job} webhook to {httpx.URL(url).host}"
    outcome = "no attempt made"
    async with httpx.AsyncClient(
        transport=GuardedTransport(PublicOnlyBackend(allowed_networks)),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,  # a redirect could point anywhere; the receiver must answer itself
        trust_env=False,  # no proxies or .netrc from the environment
    ) as client:
        for attempt in range(attempts):
            headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), body)
            retry_after = None
            try:
                # httpx's timeout is per read; this bounds a receiver that trickles its answer.
                with anyio.fail_after(timeout):
                    # Streamed and never read: only the status matters, however big the body.
                    async with client.stream("POST", url, content=body, headers=headers) as reply:
                        status, retry_after = reply.status_code, reply.headers.get("Retry-After")
            except BlockedAddress as exc:
                logger.warning("%s not sent: %s", where, exc)
                return False
            except (httpx.HTTPError, TimeoutError) as exc:
                outcome = str(exc) or type(exc).__name__
            else:
                if 200 <= status < 300:
                    return True
                outcome = f"HTTP {status}"
                if status != 429 and status < 500:
                    logger.warning("%s refused with %s; not retrying", where, outcome)
                    return False
            if attempt + 1 < attempts:
                await sleep(_delay(attempt, backoff_base, retry_after))
    logger.warning("%s failed after %d attempts (last: %s)", where, attempts, outcome)
    return False


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _delay(attempt: int, base: float, retry_after: str | None) -> float:
    requested = _parse_retry_after(retry_after) if retry_after else None
    if requested is None:
        # Jitter spreads out the retries of many deliveries that failed together.
        requested = base * 2**attempt + random.uniform(0, base)
    return min(requested, MAX_DELAY)


def _parse_retry_after(value: str) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value.strip().isdecimal():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def account_key(master: bytes, account_id: int) -> bytes:
    """The signing key of one account's webhooks, derived from the server's master key, so no
    account can forge another's deliveries and no per-account secret needs storing. It is the
    ASCII of a hex digest, so the string `retouch accounts webhook-secret` prints is the key."""
    return hmac.new(master, b"webhook:%d" % account_id, hashlib.sha256).hexdigest().encode()

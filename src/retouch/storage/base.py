"""The result store's interface: what every backend (local directory today, S3 later) provides.

A key is the only capability a client holds for a result, so it carries 256 random bits and is
checked against its pattern before any backend sees it: a key that could not have been issued
never reaches a path or an object name. Methods are synchronous; callers run them in a worker
thread. Expiry is kept to the whole second, the precision of a signed URL's ``expires``.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_MEDIA_TYPES = {extension: media_type for media_type, extension in _EXTENSIONS.items()}

# secrets.token_urlsafe(32) is always 43 characters of the URL-safe base64 alphabet.
_KEY = re.compile(r"[A-Za-z0-9_-]{43}\.(png|jpg|webp)")


@dataclass(frozen=True)
class StoredResult:
    data: bytes
    media_type: str
    expires_at: datetime


class ResultStore(Protocol):
    def put(self, data: bytes, *, media_type: str, expires_at: datetime) -> str:
        """Store ``data`` and return its new, unguessable key."""

    def get(self, key: str, *, now: datetime) -> StoredResult | None:
        """The result, or None when the key is malformed, unknown or expired at ``now``."""

    def extend(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Keep a live result until at least ``expires_at``; False when it is gone or expired."""

    def sweep(self, *, now: datetime) -> int:
        """Delete the results expired at ``now`` and return how many there were."""

    def ping(self) -> bool:
        """Whether results can be stored right now (for readiness probes); never raises."""


@runtime_checkable
class PresigningStore(Protocol):
    """A store whose results clients can download from it directly (S3)."""

    def presigned_url(self, key: str, *, expires_in: int) -> str:
        """A URL that serves ``key`` for ``expires_in`` seconds without Retouch."""


def new_key(media_type: str) -> str:
    """A fresh key whose extension tells a later ``get`` (and a browser) the media type."""
    extension = _EXTENSIONS.get(media_type)
    if extension is None:
        raise ValueError(f"cannot store media type {media_type!r}")
    return f"{secrets.token_urlsafe(32)}.{extension}"


def media_type_of(key: str) -> str | None:
    """The media type a key was issued for, or None when no key of that shape is ever issued."""
    match = _KEY.fullmatch(key)
    return _MEDIA_TYPES[match.group(1)] if match else None


def unix_seconds(moment: datetime) -> int:
    # Floor, so that rounding never serves a result (or honours a URL) past its stated expiry.
    return math.floor(moment.timestamp())

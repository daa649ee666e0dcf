"""Signed, expiring result URLs (the key they are signed with: retouch.server_secrets).

The signature binds a key to its expiry, so a URL cannot be stretched past the hour it was issued
for, and a forged or stale URL is refused before the store is touched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from urllib.parse import urlencode

from retouch.storage.base import unix_seconds

_MIN_SECRET_BYTES = 32


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"the signing secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def sign(self, key: str, expires_at: datetime) -> str:
        """The query string (``expires=…&signature=…``) that makes ``key`` fetchable until then."""
        expires = unix_seconds(expires_at)
        return urlencode({"expires": expires, "signature": self._signature(key, expires)})

    def verify(self, key: str, expires: str | int, signature: str, *, now: datetime) -> bool:
        if isinstance(expires, str):
            # int() alone would accept " 1", "+1", "1_0" and non-ASCII digits.
            if not (expires.isascii() and expires.isdigit() and len(expires) <= 20):
                return False
            expires = int(expires)
        # compare_digest refuses non-ASCII strings with TypeError; such a signature is just wrong.
        if not signature.isascii():
            return False
        valid = hmac.compare_digest(self._signature(key, expires), signature)
        return valid and expires > now.timestamp()

    def _signature(self, key: str, expires: int) -> str:
        # Keys never contain a newline, so "key\nexpires" cannot be read two ways.
        message = f"{key}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_result_url(base: str, key: str, *, signer: UrlSigner, expires_at: datetime) -> str:
    """The public URL of a stored result: ``base`` is the server's own address as clients see it."""
    return f"{base.rstrip('/')}/v1/results/{key}?{signer.sign(key, expires_at)}"

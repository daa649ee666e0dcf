"""Signed result URLs (the shared signing key: tests/test_server_secrets.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from retouch.storage.signing import UrlSigner

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EXPIRES_AT = NOW + timedelta(hours=1)
KEY = "A" * 43 + ".png"
SIGNER = UrlSigner(b"s" * 32)


def signed(key: str = KEY, signer: UrlSigner = SIGNER) -> tuple[str, str]:
    query = parse_qs(signer.sign(key, EXPIRES_AT), strict_parsing=True)
    assert sorted(query) == ["expires", "signature"]
    return query["expires"][0], query["signature"][0]


def test_a_signed_url_verifies_until_it_expires() -> None:
    expires, signature = signed()

    assert int(expires) == int(EXPIRES_AT.timestamp())
    assert SIGNER.verify(KEY, expires, signature, now=NOW)
    assert SIGNER.verify(KEY, int(expires), signature, now=EXPIRES_AT - timedelta(seconds=1))
    assert not SIGNER.verify(KEY, expires, signature, now=EXPIRES_AT)


def test_tampering_is_detected() -> None:
    expires, signature = signed()
    other_key = "B" + KEY[1:]

    assert not SIGNER.verify(other_key, expires, signature, now=NOW)
    assert not SIGNER.verify(KEY, str(int(expires) + 3600), signature, now=NOW)
    assert not SIGNER.verify(KEY, expires, signed(other_key)[1], now=NOW)
    assert not SIGNER.verify(KEY, expires, signature[:-1], now=NOW)


def test_another_secret_does_not_verify() -> None:
    expires, signature = signed(signer=UrlSigner(b"t" * 32))

    assert not SIGNER.verify(KEY, expires, signature, now=NOW)


# Each of these would get past a bare int() or make it raise.
@pytest.mark.parametrize("expires", ["", " 1", "+1", "1_0", "١٢", "9" * 5000])
def test_malformed_expiry_is_refused_not_raised(expires: str) -> None:
    assert not SIGNER.verify(KEY, expires, signed()[1], now=NOW)


def test_non_ascii_signature_is_refused_not_raised() -> None:
    expires, signature = signed()

    assert not SIGNER.verify(KEY, expires, "é" + signature[1:], now=NOW)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        UrlSigner(b"short")

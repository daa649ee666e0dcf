"""Signed result URLs and the shared signing secret."""

from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from retouch.storage.signing import UrlSigner, load_or_create_secret

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


def test_secret_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"

    secret = load_or_create_secret(path)

    assert len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == secret
    assert os.listdir(path.parent) == ["secret.key"]


def test_an_existing_secret_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(b"operator-provided secret of enough length")

    assert load_or_create_secret(path) == b"operator-provided secret of enough length"


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    workers = 16
    start = threading.Barrier(workers)

    def load() -> bytes:
        start.wait()
        return load_or_create_secret(path)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        secrets = set(pool.map(lambda _: load(), range(workers)))

    assert secrets == {path.read_bytes()}
    assert os.listdir(tmp_path) == ["secret.key"]

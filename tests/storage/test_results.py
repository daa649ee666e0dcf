"""The result-store contract on every backend (local directory, S3), then what only S3 has.

S3 runs against a real SeaweedFS started for the session (tests/utils/seaweed.py); each test gets
a bucket of its own. Without the ``weed`` binary these tests skip here and fail in CI.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from retouch.errors import ServiceUnavailable
from retouch.storage.base import ResultStore, StoredResult
from retouch.storage.local import LocalResultStore
from retouch.storage.s3 import S3ResultStore
from tests.utils.processes import free_port
from tests.utils.seaweed import Seaweed, running_seaweed

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
PREFIX = "results"
# Storage being down must fail a request in seconds (connect timeout and one retry), not hang it.
UNAVAILABLE_WITHIN_SECONDS = 8


@pytest.fixture
def s3(seaweed: Seaweed, aws_env: None) -> Any:
    """A plain client for looking at the bucket behind the store's back."""
    return boto3.session.Session().client("s3", endpoint_url=seaweed.endpoint_url)


@pytest.fixture
def bucket() -> str:
    return f"retouch-test-{uuid.uuid4().hex[:12]}"


@dataclass
class Backend:
    store: ResultStore
    # A second instance on the same storage, standing in for another server process.
    open_another: Callable[[], ResultStore]
    # The names stored where the store keeps its results, results or not.
    names: Callable[[], list[str]]
    # Stores something that is not a result beside the results.
    add_foreign: Callable[[str], None]


def _local(root: Path) -> Backend:
    def add_foreign(name: str) -> None:
        (root / name).write_bytes(b"not ours")

    return Backend(
        LocalResultStore(root),
        lambda: LocalResultStore(root),
        lambda: os.listdir(root),
        add_foreign,
    )


def _s3(seaweed: Seaweed, s3: Any, bucket: str) -> Backend:
    url = f"s3://{bucket}/{PREFIX}"

    def open_store() -> ResultStore:
        return S3ResultStore(url, endpoint_url=seaweed.endpoint_url)

    def names() -> list[str]:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/")
        return [entry["Key"].removeprefix(f"{PREFIX}/") for entry in listing.get("Contents", [])]

    def add_foreign(name: str) -> None:
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{name}", Body=b"not ours")

    return Backend(open_store(), open_store, names, add_foreign)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, bucket: str) -> Backend:
    if request.param == "local":
        return _local(tmp_path / "results")
    return _s3(request.getfixturevalue("seaweed"), request.getfixturevalue("s3"), bucket)


def fetch(store: ResultStore, key: str, *, now: datetime = NOW) -> StoredResult:
    result = store.get(key, now=now)
    assert result is not None, f"{key} not found at {now}"
    return result


# --- The contract, on every backend ---------------------------------------------------------


def test_round_trip_keeps_bytes_media_type_and_expiry(backend: Backend) -> None:
    key = backend.store.put(b"\x89PNG data", media_type="image/png", expires_at=NOW + HOUR)

    result = fetch(backend.store, key)

    assert (result.data, result.media_type, result.expires_at) == (
        b"\x89PNG data",
        "image/png",
        NOW + HOUR,
    )


@pytest.mark.parametrize(
    ("media_type", "extension"),
    [("image/png", "png"), ("image/jpeg", "jpg"), ("image/webp", "webp")],
)
def test_keys_are_long_random_url_safe_and_carry_the_extension(
    backend: Backend, media_type: str, extension: str
) -> None:
    store = backend.store
    keys = {store.put(b"x", media_type=media_type, expires_at=NOW + HOUR) for _ in range(20)}

    assert len(keys) == 20
    for key in keys:
        assert re.fullmatch(rf"[A-Za-z0-9_-]{{43}}\.{extension}", key)
        assert fetch(store, key).media_type == media_type


def test_unknown_media_type_is_refused(backend: Backend) -> None:
    with pytest.raises(ValueError, match="image/gif"):
        backend.store.put(b"GIF89a", media_type="image/gif", expires_at=NOW + HOUR)
    assert backend.names() == []


@pytest.mark.parametrize(
    "make_key",
    [
        lambda key: "../outside.png",
        lambda key: "notes.png",  # stored beside the results, but no key looks like it
        lambda key: "/" + key,
        lambda key: "./" + key,
        lambda key: key + "\n",
        lambda key: key[:-4],
        lambda key: key[:-4] + ".jpg",
        lambda key: key[1:],
        lambda key: "",
    ],
)
def test_keys_that_were_never_issued_find_nothing(
    backend: Backend, make_key: Callable[[str], str]
) -> None:
    key = backend.store.put(b"real", media_type="image/png", expires_at=NOW + HOUR)
    backend.add_foreign("notes.png")

    forged = make_key(key)

    assert backend.store.get(forged, now=NOW) is None
    assert backend.store.extend(forged, expires_at=NOW + 2 * HOUR, now=NOW) is False


def test_a_well_formed_key_never_stored_finds_nothing(backend: Backend) -> None:
    never = "A" * 43 + ".png"

    assert backend.store.get(never, now=NOW) is None
    assert backend.store.extend(never, expires_at=NOW + HOUR, now=NOW) is False


def test_expired_result_is_not_served_before_the_sweep(backend: Backend) -> None:
    key = backend.store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    assert fetch(backend.store, key, now=NOW + HOUR - SECOND).data == b"data"
    assert backend.store.get(key, now=NOW + HOUR) is None
    assert key in backend.names()


def test_sweep_deletes_only_what_expired(backend: Backend) -> None:
    store = backend.store
    old = store.put(b"old", media_type="image/png", expires_at=NOW + HOUR)
    young = store.put(b"young", media_type="image/jpeg", expires_at=NOW + 2 * HOUR)
    backend.add_foreign("README")

    assert store.sweep(now=NOW) == 0
    assert store.sweep(now=NOW + HOUR) == 1

    assert sorted(backend.names()) == sorted(["README", young])
    assert store.get(old, now=NOW) is None
    assert fetch(store, young, now=NOW + HOUR).data == b"young"


def test_extend_keeps_a_live_result_longer_and_never_shortens_it(backend: Backend) -> None:
    store = backend.store
    key = store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    assert store.extend(key, expires_at=NOW + 3 * HOUR, now=NOW) is True
    assert store.extend(key, expires_at=NOW + 2 * HOUR, now=NOW) is True

    result = fetch(store, key, now=NOW + 2 * HOUR)
    assert (result.data, result.media_type, result.expires_at) == (
        b"data",
        "image/png",
        NOW + 3 * HOUR,
    )


def test_extend_does_not_revive_an_expired_or_missing_result(backend: Backend) -> None:
    store = backend.store
    key = store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    assert store.extend(key, expires_at=NOW + 3 * HOUR, now=NOW + HOUR) is False
    assert store.get(key, now=NOW + HOUR) is None

    store.sweep(now=NOW + HOUR)
    assert store.extend(key, expires_at=NOW + 3 * HOUR, now=NOW) is False


def test_two_stores_on_one_storage_share_results(backend: Backend) -> None:
    writer, reader = backend.store, backend.open_another()
    key = writer.put(b"shared", media_type="image/webp", expires_at=NOW + HOUR)

    assert fetch(reader, key).data == b"shared"
    assert reader.extend(key, expires_at=NOW + 2 * HOUR, now=NOW)
    assert fetch(writer, key, now=NOW + HOUR).data == b"shared"
    assert reader.sweep(now=NOW + 2 * HOUR) == 1
    assert writer.get(key, now=NOW) is None


def test_concurrent_puts_keep_every_result_whole(backend: Backend) -> None:
    store = backend.store
    payloads = [os.urandom(64 * 1024) for _ in range(32)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(
            pool.map(
                lambda data: store.put(data, media_type="image/png", expires_at=NOW + HOUR),
                payloads,
            )
        )

    assert len(set(keys)) == len(payloads)
    assert [fetch(store, key).data for key in keys] == payloads
    assert sorted(backend.names()) == sorted(keys)


# --- S3 only ----------------------------------------------------------------------------------


def test_missing_bucket_is_created(seaweed: Seaweed, s3: Any, bucket: str) -> None:
    S3ResultStore(f"s3://{bucket}/{PREFIX}", endpoint_url=seaweed.endpoint_url)

    s3.head_bucket(Bucket=bucket)  # raises if it does not exist


def test_objects_carry_their_media_type_and_expiry(seaweed: Seaweed, s3: Any, bucket: str) -> None:
    store = S3ResultStore(f"s3://{bucket}/{PREFIX}", endpoint_url=seaweed.endpoint_url)
    key = store.put(b"jpeg", media_type="image/jpeg", expires_at=NOW + HOUR + SECOND / 2)

    head = s3.head_object(Bucket=bucket, Key=f"{PREFIX}/{key}")

    assert head["ContentType"] == "image/jpeg"
    # Whole seconds, floored: never later than the expiry asked for.
    assert head["Metadata"] == {"expires-at": str(int((NOW + HOUR).timestamp()))}


@pytest.mark.parametrize(
    ("url", "stored_as"),
    [
        ("s3://{bucket}", "{key}"),
        ("s3://{bucket}/", "{key}"),
        ("s3://{bucket}/a/b/", "a/b/{key}"),
    ],
)
def test_prefix_names_where_results_live(
    seaweed: Seaweed, s3: Any, bucket: str, url: str, stored_as: str
) -> None:
    store = S3ResultStore(url.format(bucket=bucket), endpoint_url=seaweed.endpoint_url)
    key = store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    listing = s3.list_objects_v2(Bucket=bucket)["Contents"]

    assert [entry["Key"] for entry in listing] == [stored_as.format(key=key)]


def test_stores_on_other_prefixes_of_one_bucket_do_not_meet(
    seaweed: Seaweed, s3: Any, bucket: str
) -> None:
    ours = S3ResultStore(f"s3://{bucket}/ours", endpoint_url=seaweed.endpoint_url)
    theirs = S3ResultStore(f"s3://{bucket}/theirs", endpoint_url=seaweed.endpoint_url)
    key = theirs.put(b"theirs", media_type="image/png", expires_at=NOW + HOUR)

    assert ours.get(key, now=NOW) is None
    assert ours.sweep(now=NOW + 2 * HOUR) == 0
    assert fetch(theirs, key).data == b"theirs"


@pytest.mark.parametrize("url", ["file:///tmp/results", "s3://", "s3:///prefix", "s3://b/p?x=1"])
def test_url_must_name_a_bucket(url: str) -> None:
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3ResultStore(url, client=object())


def test_unreachable_endpoint_is_service_unavailable(aws_env: None, bucket: str) -> None:
    """Unreachable at start is no reason not to start (readiness reports it); every use fails
    promptly until it is back."""
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    store = S3ResultStore(f"s3://{bucket}", endpoint_url=nothing_listens)
    assert time.monotonic() - started < UNAVAILABLE_WITHIN_SECONDS

    assert store.ping() is False
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="result storage unavailable"):
        store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)
    assert time.monotonic() - started < UNAVAILABLE_WITHIN_SECONDS


def test_stopped_server_makes_every_operation_service_unavailable(
    tmp_path: Path, aws_env: None, bucket: str
) -> None:
    # A server of its own, since stopping the shared one would fail every later test.
    with running_seaweed(tmp_path) as server:
        store = S3ResultStore(f"s3://{bucket}", endpoint_url=server.endpoint_url)
        key = store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    operations: list[Callable[[], object]] = [
        lambda: store.put(b"data", media_type="image/png", expires_at=NOW + HOUR),
        lambda: store.get(key, now=NOW),
        lambda: store.extend(key, expires_at=NOW + 2 * HOUR, now=NOW),
        lambda: store.sweep(now=NOW),
    ]
    for operation in operations:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="result storage unavailable"):
            operation()
        assert time.monotonic() - started < UNAVAILABLE_WITHIN_SECONDS

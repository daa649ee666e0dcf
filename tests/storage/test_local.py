"""The local result store: round trips, key hygiene, expiry, sweeping and sharing a directory."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retouch.storage.base import ResultStore, StoredResult
from retouch.storage.local import LocalResultStore

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def store(root: Path) -> ResultStore:
    return LocalResultStore(root)


def fetch(store: ResultStore, key: str, *, now: datetime = NOW) -> StoredResult:
    result = store.get(key, now=now)
    assert result is not None, f"{key} not found at {now}"
    return result


def test_round_trip_keeps_bytes_media_type_and_expiry(store: ResultStore, root: Path) -> None:
    key = store.put(b"\x89PNG data", media_type="image/png", expires_at=NOW + HOUR)

    result = fetch(store, key)

    assert (result.data, result.media_type, result.expires_at) == (
        b"\x89PNG data",
        "image/png",
        NOW + HOUR,
    )
    assert stat.S_IMODE((root / key).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("media_type", "extension"),
    [("image/png", "png"), ("image/jpeg", "jpg"), ("image/webp", "webp")],
)
def test_keys_are_long_random_url_safe_and_carry_the_extension(
    store: ResultStore, media_type: str, extension: str
) -> None:
    keys = {store.put(b"x", media_type=media_type, expires_at=NOW + HOUR) for _ in range(50)}

    assert len(keys) == 50
    for key in keys:
        assert re.fullmatch(rf"[A-Za-z0-9_-]{{43}}\.{extension}", key)
        assert fetch(store, key).media_type == media_type


def test_unknown_media_type_is_refused(store: ResultStore) -> None:
    with pytest.raises(ValueError, match="image/gif"):
        store.put(b"GIF89a", media_type="image/gif", expires_at=NOW + HOUR)


@pytest.mark.parametrize(
    "make_key",
    [
        lambda key: "../outside.png",
        lambda key: "../../etc/passwd",
        lambda key: "notes.png",  # exists in the directory, but no key looks like it
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
    store: ResultStore, root: Path, make_key: Callable[[str], str]
) -> None:
    key = store.put(b"real", media_type="image/png", expires_at=NOW + HOUR)
    (root.parent / "outside.png").write_bytes(b"outside")
    (root / "notes.png").write_bytes(b"notes")

    forged = make_key(key)

    assert store.get(forged, now=NOW) is None
    assert store.extend(forged, expires_at=NOW + 2 * HOUR, now=NOW) is False


def test_expired_result_is_not_served_before_the_sweep(store: ResultStore, root: Path) -> None:
    key = store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    assert fetch(store, key, now=NOW + HOUR - SECOND).data == b"data"
    assert store.get(key, now=NOW + HOUR) is None
    assert (root / key).exists()


def test_sweep_deletes_only_what_expired(store: ResultStore, root: Path) -> None:
    old = store.put(b"old", media_type="image/png", expires_at=NOW + HOUR)
    young = store.put(b"young", media_type="image/jpeg", expires_at=NOW + 2 * HOUR)
    (root / "README").write_text("not ours")

    assert store.sweep(now=NOW) == 0
    assert store.sweep(now=NOW + HOUR) == 1

    assert sorted(os.listdir(root)) == sorted(["README", young])
    assert store.get(old, now=NOW) is None
    assert fetch(store, young, now=NOW + HOUR).data == b"young"


def test_sweep_removes_temp_files_only_once_their_writer_must_be_dead(
    store: ResultStore, root: Path
) -> None:
    stale, fresh = root / ".tmp-stale", root / ".tmp-fresh"
    for path, written in ((stale, NOW - 2 * HOUR), (fresh, NOW - SECOND)):
        path.write_bytes(b"partial")
        os.utime(path, (written.timestamp(), written.timestamp()))

    assert store.sweep(now=NOW) == 0  # temp files are not results

    assert os.listdir(root) == [fresh.name]


def test_failed_put_leaves_no_temp_file(
    store: ResultStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError("no space left")

    monkeypatch.setattr(os, "replace", disk_full)

    with pytest.raises(OSError, match="no space"):
        store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)
    assert os.listdir(root) == []


def test_extend_keeps_a_live_result_longer_and_never_shortens_it(store: ResultStore) -> None:
    key = store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    assert store.extend(key, expires_at=NOW + 3 * HOUR, now=NOW) is True
    assert store.extend(key, expires_at=NOW + 2 * HOUR, now=NOW) is True

    assert fetch(store, key, now=NOW + 2 * HOUR).expires_at == NOW + 3 * HOUR


def test_extend_does_not_revive_an_expired_or_missing_result(store: ResultStore) -> None:
    key = store.put(b"data", media_type="image/png", expires_at=NOW + HOUR)

    assert store.extend(key, expires_at=NOW + 3 * HOUR, now=NOW + HOUR) is False
    assert store.get(key, now=NOW + HOUR) is None

    store.sweep(now=NOW + HOUR)
    assert store.extend(key, expires_at=NOW + 3 * HOUR, now=NOW) is False


def test_two_stores_on_one_directory_share_results(root: Path) -> None:
    # Two instances stand in for two server processes: nothing is shared but the directory.
    writer, reader = LocalResultStore(root), LocalResultStore(root)
    key = writer.put(b"shared", media_type="image/webp", expires_at=NOW + HOUR)

    assert fetch(reader, key).data == b"shared"
    assert reader.extend(key, expires_at=NOW + 2 * HOUR, now=NOW)
    assert fetch(writer, key, now=NOW + HOUR).data == b"shared"
    assert reader.sweep(now=NOW + 2 * HOUR) == 1
    assert writer.get(key, now=NOW) is None


def test_concurrent_puts_keep_every_result_whole(store: ResultStore, root: Path) -> None:
    payloads = [os.urandom(64 * 1024) for _ in range(64)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(
            pool.map(
                lambda data: store.put(data, media_type="image/png", expires_at=NOW + HOUR),
                payloads,
            )
        )

    assert len(set(keys)) == len(payloads)
    assert [fetch(store, key).data for key in keys] == payloads
    assert sorted(os.listdir(root)) == sorted(keys)  # no temp file left behind

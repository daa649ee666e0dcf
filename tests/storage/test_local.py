"""What only the local result store has: temporary files of writes that never finished.

The contract every store keeps is tested once for all backends in test_results.py.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retouch.storage.base import ResultStore
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

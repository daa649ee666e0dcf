"""Results as files in one directory, shared safely by every server process on the machine.

Each result is a single file named by its key, and its expiry is the file's mtime (the media type
is the key's extension). One file per result means every change is one atomic filesystem call:
``os.replace`` publishes a complete file, ``os.utime`` extends it, ``os.unlink`` sweeps it. A JSON
sidecar would need two files kept in step, with torn pairs and orphans to handle after a crash;
the mtime needs no locks and survives restarts. Tools that reset mtimes (a copy without ``-p``)
can only make results expire early, never live longer.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from retouch.storage.base import StoredResult, media_type_of, new_key, unix_seconds

_NS = 1_000_000_000
_TEMP_PREFIX = ".tmp-"
# A temp file this old belongs to a writer that died; no live write takes anywhere near as long.
_TEMP_GRACE_SECONDS = 3600


class LocalResultStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        # Results are customers' images: readable by the service's user only.
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def put(self, data: bytes, *, media_type: str, expires_at: datetime) -> str:
        key = new_key(media_type)
        expiry_ns = unix_seconds(expires_at) * _NS
        # Written beside its final name, so that the rename is atomic and a reader in any process
        # sees either no file or the whole one, already carrying its expiry.
        fd, temp = tempfile.mkstemp(dir=self._root, prefix=_TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.utime(temp, ns=(expiry_ns, expiry_ns))
            os.replace(temp, self._root / key)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str, *, now: datetime) -> StoredResult | None:
        media_type = media_type_of(key)
        if media_type is None:
            return None
        try:
            with open(self._root / key, "rb") as file:
                # fstat on the open file: the expiry checked is that of the bytes read.
                expiry = os.fstat(file.fileno()).st_mtime_ns // _NS
                if expiry <= now.timestamp():
                    return None
                data = file.read()
        except FileNotFoundError:
            return None
        return StoredResult(data, media_type, datetime.fromtimestamp(expiry, UTC))

    def extend(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        if media_type_of(key) is None:
            return False
        path = self._root / key
        try:
            current = path.stat().st_mtime_ns // _NS
            # An expired result stays dead even before the sweeper removes it.
            if current <= now.timestamp():
                return False
            wanted = unix_seconds(expires_at)
            if wanted > current:
                os.utime(path, ns=(wanted * _NS, wanted * _NS))
        except FileNotFoundError:
            return False
        return True

    def ping(self) -> bool:
        return os.access(self._root, os.W_OK | os.X_OK)

    def sweep(self, *, now: datetime) -> int:
        deleted = 0
        cutoff = now.timestamp()
        with os.scandir(self._root) as entries:
            for entry in entries:
                is_result = media_type_of(entry.name) is not None
                if not is_result and not entry.name.startswith(_TEMP_PREFIX):
                    continue
                try:
                    expiry = entry.stat().st_mtime_ns // _NS
                    grace = 0 if is_result else _TEMP_GRACE_SECONDS
                    if expiry + grace <= cutoff:
                        # An extend landing between this stat and the unlink is lost; it would
                        # have to race the very second the result expires.
                        os.unlink(entry.path)
                        deleted += 1 if is_result else 0
                except FileNotFoundError:
                    continue  # another process swept it first
        return deleted

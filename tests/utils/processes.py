"""Run ``retouch`` as a real separate process, the way an operator would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def retouch_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETOUCH_")}
    env.update({f"RETOUCH_{k.upper()}": v for k, v in settings.items()})
    return env


def run_cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retouch", *args],
        env=retouch_env(**settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def worker(log: Path, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """``retouch worker``, its output appended to ``log``; stopped with SIGTERM afterwards
    unless it has already ended (a test may kill it)."""
    with log.open("a") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "retouch", "worker"],
            env=retouch_env(**settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@dataclass
class ServeProcess:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def serve(log: Path, **settings: str) -> Iterator[ServeProcess]:
    """``retouch serve`` on a free port; stopped (and its output kept in ``log``) afterwards."""
    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "retouch", "serve", "--port", str(port)],
            env=retouch_env(**settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"retouch serve exited: {log.read_text()}")
            try:
                httpx.get(f"{url}/v1/credits", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"retouch serve did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield ServeProcess(url=url, process=process, log=log)
    finally:
        process.terminate()
        process.wait(timeout=15)

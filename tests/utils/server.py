"""Serve an app over real HTTP on a loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    metrics_url: str | None = None

    @classmethod
    @contextmanager
    def start(cls, app: FastAPI, *, metrics_port: int | None = None) -> Iterator[LiveServer]:
        """Serve ``app`` on a free port, and on ``metrics_port`` too when given (the app's
        RETOUCH_METRICS_PORT), as `retouch serve` does."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sockets = [sock]
        if metrics_port is not None:
            sockets.append(socket.create_server(("127.0.0.1", metrics_port)))
        server = uvicorn.Server(
            # Forwarded headers are the app's business (RETOUCH_FORWARDED_ALLOW_IPS), as in
            # `retouch serve`: uvicorn's own handling would trust loopback.
            uvicorn.Config(
                app, log_config=None, lifespan="on", access_log=False, proxy_headers=False
            )
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        try:
            metrics_url = None if metrics_port is None else f"http://127.0.0.1:{metrics_port}"
            yield cls(url=f"http://127.0.0.1:{port}", app=app, metrics_url=metrics_url)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            for listener in sockets:
                listener.close()

"""A client that sends a whole request, then hangs up without reading the answer."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx


@contextmanager
def sent_request(url: str, **request: Any) -> Iterator[Callable[[], None]]:
    """Send ``request`` (httpx.Request's arguments) over a raw connection; the body yields a
    ``hang_up`` function that closes the connection before any answer is read."""
    built = httpx.Request("POST", url, **request)
    body = built.read()
    target = urlsplit(url)
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.netloc}"]
    lines += [f"{name}: {value}" for name, value in built.headers.items() if name != "host"]
    sock = socket.create_connection((target.hostname, target.port))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    try:
        yield sock.close
    finally:
        sock.close()

"""How `retouch serve` runs the app: uvicorn, with a deadline on request headers and an optional
second listener for metrics.

uvicorn bounds a request's body only through the app (see ``api.middleware``) and idle
keep-alive connections through ``timeout_keep_alive``, but nothing bounds a request whose line
and headers trickle in: each such connection would be held for ever (slow-loris).
``HeaderTimeoutProtocol`` closes a connection whose request line and headers are not complete
within ``header_timeout`` seconds, counted from the connection's start for its first request and
from the end of the previous response for each later one (uvicorn's keep-alive timeout alone
would not do: any byte, even a bare CRLF, restarts it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from retouch.config import Settings

logger = logging.getLogger(__name__)

APP = "retouch.app:app_from_environment"

# A request line and headers longer than this are refused: httptools sets no limit of its own
# (h11's is 16 KiB, nginx's 8 KiB per line), so within the deadline a fast client could make the
# server buffer as much as it can send.
MAX_HEADER_BYTES = 64 * 1024


def _closing_response(status: str, message: str, error_code: str) -> bytes:
    body = json.dumps({"error": message, "error_code": error_code}).encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (status.encode(), len(body), body)
    )


_TIMEOUT_RESPONSE = _closing_response(
    "408 Request Timeout", "The request headers were not received in time", "request_timeout"
)
_TOO_LARGE_RESPONSE = _closing_response(
    "431 Request Header Fields Too Large",
    f"The request line and headers are longer than {MAX_HEADER_BYTES} bytes",
    "request_header_fields_too_large",
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request headers are late."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0  # received while the deadline runs
        self._request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is not None:
            self._header_bytes += len(data)
        super().data_received(data)
        # Still waiting for the end of the headers: everything counted was headers.
        if (
            self._header_deadline is not None
            and self._header_bytes > MAX_HEADER_BYTES
            and not self.transport.is_closing()
        ):
            self._disarm()
            self.transport.write(_TOO_LARGE_RESPONSE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        # Usually armed already; not for a request pipelined behind one still being answered.
        if self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._request_begun = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle now (unless a pipelined request was started): the next request's clock starts.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing() and self._header_deadline is None:
            self._arm()

    def _arm(self) -> None:
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request stalled behind one still being answered: finish that answer,
            # then close instead of waiting for the rest.
            self.cycle.keep_alive = False
            return
        # A client part-way through a request is told why; one that never started one (a
        # browser's speculative connection, say) is closed silently, as an idle keep-alive is.
        if self._request_begun:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        logger.error("cannot listen on %s port %d: %s", host, port, exc)
        sys.exit(1)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> None:
    """Serve the app on ``settings.host:port`` (and ``metrics_host:metrics_port`` when set) with
    ``settings.workers`` processes, until a signal stops it gracefully."""
    protocol = functools.partial(
        HeaderTimeoutProtocol, header_timeout=settings.header_timeout_seconds
    )
    config = uvicorn.Config(
        APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # uvicorn instantiates any protocol factory; its annotation names only classes.
        http=protocol,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,  # Retouch logs each request itself, with its request id
        # The app applies forwarded headers itself, from RETOUCH_FORWARDED_ALLOW_IPS only.
        proxy_headers=False,
    )
    sockets = [config.bind_socket()]
    if settings.metrics_port is not None:
        sockets.append(_bind(settings.metrics_host, settings.metrics_port))
        logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    if settings.workers > 1:
        Multiprocess(config, sockets=sockets).run()
        return
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(1)

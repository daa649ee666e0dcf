"""Request context: request id, body-size cap and deadline, per-request response headers,
access log; the Host check; the metrics listener.

Pure ASGI rather than ``BaseHTTPMiddleware`` so streaming bodies are counted as they arrive,
oversized uploads are refused before they are read whole, and a body trickling in slower than
its deadline (slow-loris) is cut off instead of holding a connection and a request open.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import anyio
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retouch.api.errors import error_response
from retouch.errors import FileSizeTooLarge, RequestTimeout

logger = logging.getLogger("retouch.access")


def add_response_headers(scope: Scope, headers: dict[str, str]) -> None:
    """Queue headers for the response of this request, whatever its status."""
    scope.setdefault("state", {}).setdefault("response_headers", {}).update(headers)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # Always ours: the id also keys the request's credit reservation, so a client must not
        # be able to choose (and reuse) it.
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        too_large = FileSizeTooLarge(f"The request body is larger than {self.max_body_bytes} bytes")
        # One deadline for the whole body, from the moment the headers were in: a per-read
        # timeout would let a client sending a byte every few seconds hold the request forever.
        body_deadline = started + self.body_timeout_seconds
        timed_out = False

        started_response = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                out = MutableHeaders(scope=message)
                out["X-Request-Id"] = request_id
                for name, value in state.get("response_headers", {}).items():
                    out.setdefault(name, value)
                if timed_out:
                    # The rest of the body may still be on its way; the server must not read it
                    # as the next request, nor keep waiting for it. (Other early answers, such as
                    # a 401 or a 429, keep the connection: closing it under a client still
                    # sending makes that client see a reset instead of the answer.)
                    out["Connection"] = "close"
            await send(message)

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            response = error_response(too_large.status, too_large.error_code, too_large.message)
            await response(scope, receive, send_with_headers)
            self._log(scope, request_id, response.status_code, started)
            return

        received = 0
        body_complete = False

        async def counting_receive() -> Message:
            nonlocal received, body_complete, timed_out
            if body_complete:
                # Later receives wait for the client to disconnect, for as long as a response
                # streams: no deadline applies to them.
                return await receive()
            # At zero, bytes already buffered are still delivered; only waiting for more fails.
            remaining = max(body_deadline - time.perf_counter(), 0)
            try:
                with anyio.fail_after(remaining):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise RequestTimeout(
                    f"The request body was not received within {self.body_timeout_seconds:g} "
                    "seconds"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise too_large
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except Exception:
            if started_response:
                raise
            # Answered here rather than by Starlette's outermost handler, which re-raises into
            # the server and makes it drop the client's keep-alive connection.
            logger.exception("unhandled error", extra={"request_id": request_id})
            response = error_response(500, "internal_error", "Internal service error")
            await response(scope, receive, send_with_headers)
        finally:
            self._log(scope, request_id, status, started)

    @staticmethod
    def _log(scope: Scope, request_id: str, status: int, started: float) -> None:
        state = scope.get("state", {})
        elapsed = time.perf_counter() - started
        services = getattr(scope["app"].state, "services", None)
        if services is not None:
            # The route's template, not the raw path: unbounded label values (ids, typos)
            # would make a series per request.
            route = getattr(scope.get("route"), "path", "unmatched")
            services.metrics.requests.labels(route, scope["method"], str(status)).inc()
            services.metrics.latency.labels(route, scope["method"]).observe(elapsed)
        logger.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={
                "request_id": request_id,
                "account_id": state.get("account_id"),
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )


# A host name or an IP literal (IPv6 in brackets), then an optional port: anything else in a
# Host header (a path, credentials, spaces) is refused rather than copied into a URL.
_HOST_HEADER = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
# Probes and load balancers address a node by its IP; these answers carry no URL.
_ANY_HOST_PATHS = frozenset({"/healthz", "/readyz"})


def host_allowed(host: str, patterns: list[str]) -> bool:
    """``host`` (lower case, no port) against exact names, ``*.suffix`` and ``*``."""
    return any(
        pattern in ("*", host) or (pattern.startswith("*.") and host.endswith(pattern[1:]))
        for pattern in patterns
    )


class AllowedHostsMiddleware:
    """400 for a request naming a host this server does not serve: the Host header becomes the
    base of ``result_url``s, and must never point clients elsewhere."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _ANY_HOST_PATHS:
            await self.app(scope, receive, send)
            return
        # Without a Host (HTTP/1.0) URLs are built from the address the request came in on.
        value = Headers(scope=scope).get("host")
        if value is not None:
            match = _HOST_HEADER.fullmatch(value)
            host = match.group(1).strip("[]").lower() if match else None
            if host is None or not host_allowed(host, self.allowed_hosts):
                shown = value if len(value) <= 100 else value[:100] + "…"
                response = error_response(
                    400,
                    "invalid_parameter",
                    f"Host {shown!r} is not served here (see RETOUCH_ALLOWED_HOSTS)",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class MetricsListenerMiddleware:
    """On the metrics port, /metrics and nothing else; the API's port never serves metrics."""

    def __init__(self, app: ASGIApp, *, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "http" or server is None or server[1] != self.port:
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            services = scope["app"].state.services
            body = await anyio.to_thread.run_sync(services.metrics.render)
            response: Response = Response(body, media_type=CONTENT_TYPE_LATEST)
        else:
            response = error_response(404, "not_found", "This port serves only /metrics")
        await response(scope, receive, send)

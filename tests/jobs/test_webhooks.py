"""Webhook delivery against a real receiver on 127.0.0.1; nothing else may be reached."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import Any

import pytest

from retouch.errors import InvalidParameter
from retouch.jobs.webhooks import deliver, sign, validate_webhook_url, verify

LOOPBACK = [ip_network("127.0.0.1/32")]
SECRET = b"test-webhook-secret-0123456789abcdef"
DOCUMENT = {"job_id": "3f0c7a52", "status": "completed", "result_url": "https://r.example/x.png"}
STALL = -1  # a scripted status meaning: never answer

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("connections")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        # (status, headers) answered in turn; 200 once the script runs out.
        self.script: list[tuple[int, dict[str, str]]] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The client hanging up on a stalled answer is expected here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(Received(self.path, dict(self.headers.items()), body))
        status, headers = self.server.script.pop(0) if self.server.script else (200, {})
        if status == STALL:
            self.server.release.wait(5)
            return
        self.send_response(status)
        for name, value in {"Content-Length": "2", **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    httpd = _Receiver()
    # A short poll keeps shutdown, which waits out one poll, from adding half a second per test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_delivers_the_signed_document(
    receiver: _Receiver, connections: list[str], status: str
) -> None:
    document = {**DOCUMENT, "status": status}
    assert await deliver(receiver.url, document, secret=SECRET, allowed_networks=LOOPBACK)
    [got] = receiver.received
    assert json.loads(got.body) == document
    assert got.body == json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Retouch-Event"] == f"job.{status}"
    uuid.UUID(got.headers["Retouch-Delivery"])
    assert verify(SECRET, got.headers["Retouch-Signature"], got.body, now=time.time())
    assert connections == ["127.0.0.1"]


def test_verify_rejects_wrong_secret_tampering_and_stale_timestamps() -> None:
    body = b'{"job_id":"a","status":"completed"}'
    now = 1_700_000_000
    header = sign(SECRET, now, body)
    assert header.startswith(f"t={now},v1=")
    digest = header.rpartition("=")[2]
    assert verify(SECRET, header, body, now=now + 299)
    assert not verify(b"another-secret", header, body, now=now)
    assert not verify(SECRET, header, body.replace(b"completed", b"failed"), now=now)
    assert not verify(SECRET, header, body, now=now + 301)
    assert not verify(SECRET, header, body, now=now - 301)
    # A rotated secret: the receiver accepts if any v1 matches.
    rotated = f"{sign(b'old-secret', now, body)},v1={digest}"
    assert verify(SECRET, rotated, body, now=now)
    for malformed in ["", "v1=abc", f"t=soon,v1={digest}", f"t={now}", f"t={now},v1=\u00e9"]:
        assert not verify(SECRET, malformed, body, now=now)


async def test_retries_server_errors_with_one_delivery_id(
    receiver: _Receiver, sleep: RecordingSleep
) -> None:
    receiver.script = [(500, {}), (503, {})]
    delivered = await deliver(
        receiver.url, DOCUMENT, secret=SECRET, allowed_networks=LOOPBACK, sleep=sleep
    )
    assert delivered
    assert len(receiver.received) == 3
    assert len({got.headers["Retouch-Delivery"] for got in receiver.received}) == 1
    assert all(
        verify(SECRET, got.headers["Retouch-Signature"], got.body, now=time.time())
        for got in receiver.received
    )
    # base·2^n plus up to one base of jitter.
    assert 1 <= sleep.delays[0] <= 2
    assert 2 <= sleep.delays[1] <= 3


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("7", 7),
        ("3600", 60),  # capped
        ("an HTTP date 30 s ahead", 30),
        ("whenever", None),  # unparseable: ordinary backoff
    ],
)
async def test_honours_retry_after(
    receiver: _Receiver, sleep: RecordingSleep, retry_after: str, expected: float | None
) -> None:
    if retry_after.startswith("an HTTP date"):
        # Built here, not at collection, so the time until it is still 30 s.
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    receiver.script = [(429, {"Retry-After": retry_after})]
    delivered = await deliver(
        receiver.url, DOCUMENT, secret=SECRET, allowed_networks=LOOPBACK, sleep=sleep
    )
    assert delivered
    assert len(receiver.received) == 2
    [delay] = sleep.delays
    if expected is None:
        assert 1 <= delay <= 2
    else:
        assert delay == pytest.approx(expected, abs=2)


async def test_gives_up_after_the_last_attempt(
    receiver: _Receiver, sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script = [(500, {})] * 3
    delivered = await deliver(
        receiver.url, DOCUMENT, secret=SECRET, allowed_networks=LOOPBACK, attempts=3, sleep=sleep
    )
    assert not delivered
    assert len(receiver.received) == 3
    assert len(sleep.delays) == 2  # none after the last attempt
    assert "failed after 3 attempts (last: HTTP 500)" in caplog.text
    assert SECRET.decode() not in caplog.text


@pytest.mark.parametrize("status", [400, 404, 302])
async def test_does_not_retry_client_errors_or_follow_redirects(
    receiver: _Receiver, sleep: RecordingSleep, status: int
) -> None:
    receiver.script = [(status, {"Location": "/elsewhere"})]
    delivered = await deliver(
        receiver.url, DOCUMENT, secret=SECRET, allowed_networks=LOOPBACK, sleep=sleep
    )
    assert not delivered
    assert [got.path for got in receiver.received] == ["/hook"]
    assert sleep.delays == []


async def test_retries_timeouts(receiver: _Receiver, sleep: RecordingSleep) -> None:
    receiver.script = [(STALL, {})]
    delivered = await deliver(
        receiver.url, DOCUMENT, secret=SECRET, allowed_networks=LOOPBACK, timeout=0.2, sleep=sleep
    )
    assert delivered
    assert len(receiver.received) == 2
    assert len(sleep.delays) == 1


async def test_retries_refused_connections(sleep: RecordingSleep) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    delivered = await deliver(
        f"http://127.0.0.1:{port}/hook",
        DOCUMENT,
        secret=SECRET,
        allowed_networks=LOOPBACK,
        attempts=2,
        sleep=sleep,
    )
    assert not delivered
    assert len(sleep.delays) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "localhost"])
async def test_refuses_private_targets_unless_allowed(
    receiver: _Receiver,
    sleep: RecordingSleep,
    connections: list[str],
    caplog: pytest.LogCaptureFixture,
    host: str,
) -> None:
    url = receiver.url.replace("127.0.0.1", host)
    assert not await deliver(url, DOCUMENT, secret=SECRET, sleep=sleep)
    assert receiver.received == []
    assert connections == []  # refused before any socket was opened
    assert sleep.delays == []  # and not retried: the answer would not change
    assert "not a public address" in caplog.text


async def test_an_invalid_url_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not await deliver("ftp://example.com/x", DOCUMENT, secret=SECRET)
    assert "webhook_url must be an http:// or https:// URL" in caplog.text


def test_validate_webhook_url_accepts_http_and_https() -> None:
    for url in ["https://hooks.example.com/retouch?token=abc", "http://10.0.0.5:8080/hook"]:
        assert validate_webhook_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://",
        "http://exa mple.com:port/",
        "https://hooks.example.com/" + "a" * 2048,
    ],
)
def test_validate_webhook_url_rejects(url: str) -> None:
    with pytest.raises(InvalidParameter, match=r"^webhook_url "):
        validate_webhook_url(url)

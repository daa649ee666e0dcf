"""fetch_url against a real HTTP server on 127.0.0.1; every other address must be refused unsent."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from retouch.errors import FileSizeTooLarge, InvalidParameter
from retouch.fetch import fetch_url, is_public_address

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]
PAYLOAD = bytes(range(256)) * 8  # 2048 bytes
STALL_RELEASE = threading.Event()

# Every test runs under the connection guard: nothing may reach beyond loopback.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("connections")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/image":
            self._send(200, PAYLOAD)
        elif url.path == "/redirect":
            self._send(302, b"", Location=parse_qs(url.query)["to"][0])
        elif url.path.startswith("/hops/"):
            left = int(url.path.rsplit("/", 1)[1])
            if left:
                self._send(302, b"", Location=f"/hops/{left - 1}")
            else:
                self._send(200, PAYLOAD)
        elif url.path == "/chunked":
            self._send_chunked([PAYLOAD] * 10)
        elif url.path == "/stall":
            STALL_RELEASE.wait(5)
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in [*chunks, b""]:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The client hanging up mid-body (size cap, timeout) is expected here."""


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    STALL_RELEASE.set()
    httpd.shutdown()
    httpd.server_close()


async def test_fetches_the_body(origin: str, connections: list[str]) -> None:
    data = await fetch_url(f"{origin}/image", max_bytes=10_000, allowed_networks=LOOPBACK)
    assert data == PAYLOAD
    assert connections == ["127.0.0.1"]


async def test_connects_to_the_address_it_checked(
    origin: str, connections: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []

    async def resolve(host: str, port: int, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(anyio, "getaddrinfo", resolve)
    port = origin.rsplit(":", 1)[1]
    data = await fetch_url(
        f"http://images.example:{port}/image", max_bytes=10_000, allowed_networks=LOOPBACK
    )
    assert data == PAYLOAD
    # One lookup, and the socket went to its answer: a second resolution could not rebind it.
    assert lookups == ["images.example"]
    assert connections == ["127.0.0.1"]


async def test_refuses_loopback_unless_allowed(origin: str, connections: list[str]) -> None:
    with pytest.raises(InvalidParameter, match=r"127\.0\.0\.1 is not a public address"):
        await fetch_url(f"{origin}/image", max_bytes=10_000)
    assert connections == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://localhost/",
        "http://0.0.0.0/",
        "http://2130706433/",  # 127.0.0.1 as a single integer
    ],
)
async def test_refuses_non_public_hosts_before_connecting(url: str, connections: list[str]) -> None:
    with pytest.raises(InvalidParameter, match=r"^image_url could not be fetched: .* not a public"):
        await fetch_url(url, max_bytes=10_000)
    assert connections == []


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/"])
async def test_checks_every_redirect_hop(origin: str, target: str, connections: list[str]) -> None:
    with pytest.raises(InvalidParameter, match="not a public address"):
        await fetch_url(
            f"{origin}/redirect?to={target}", max_bytes=10_000, allowed_networks=LOOPBACK
        )
    assert connections == ["127.0.0.1"]


async def test_follows_up_to_max_redirects(origin: str) -> None:
    data = await fetch_url(f"{origin}/hops/5", max_bytes=10_000, allowed_networks=LOOPBACK)
    assert data == PAYLOAD
    with pytest.raises(InvalidParameter, match="more than 5 redirects"):
        await fetch_url(f"{origin}/hops/6", max_bytes=10_000, allowed_networks=LOOPBACK)


@pytest.mark.parametrize("path", ["/image", "/chunked"], ids=["content-length", "chunked"])
async def test_caps_the_body(origin: str, path: str) -> None:
    with pytest.raises(FileSizeTooLarge, match="image_url is larger than the 1000 bytes limit"):
        await fetch_url(f"{origin}{path}", max_bytes=1000, allowed_networks=LOOPBACK)


async def test_rejects_error_statuses(origin: str) -> None:
    with pytest.raises(InvalidParameter, match="^image_url could not be fetched: HTTP 404$"):
        await fetch_url(f"{origin}/missing", max_bytes=10_000, allowed_networks=LOOPBACK)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "example.com/a.png", "http://"]
)
async def test_rejects_non_http_urls(url: str, connections: list[str]) -> None:
    with pytest.raises(InvalidParameter, match="^image_url "):
        await fetch_url(url, max_bytes=10_000)
    assert connections == []


async def test_says_why_a_connection_failed() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago refuses connections
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        InvalidParameter, match=r"could not connect to 127\.0\.0\.1 \(connection refused\)"
    ):
        await fetch_url(f"http://127.0.0.1:{port}/", max_bytes=10_000, allowed_networks=LOOPBACK)


async def test_names_an_unresolvable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(anyio, "getaddrinfo", fail)
    with pytest.raises(InvalidParameter, match="nowhere.example could not be resolved"):
        await fetch_url("http://nowhere.example/a.png", max_bytes=10_000)


async def test_gives_up_on_a_stalled_server(origin: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidParameter, match=r"no response within 0\.3 s"):
        await fetch_url(
            f"{origin}/stall", max_bytes=10_000, allowed_networks=LOOPBACK, total_timeout=0.3
        )
    assert time.monotonic() - started < 2


async def test_field_name_is_configurable(origin: str) -> None:
    with pytest.raises(InvalidParameter, match="^garment_image_url could not be fetched"):
        await fetch_url(
            f"{origin}/missing",
            max_bytes=10_000,
            allowed_networks=LOOPBACK,
            field="garment_image_url",
        )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:93.184.215.14", True),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("fc00::1", False),
        ("fec0::1", False),
        ("2001::1", False),  # Teredo
        ("2002:a00:1::", False),  # 6to4 wrapping 10.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 wrapping 169.254.169.254
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public

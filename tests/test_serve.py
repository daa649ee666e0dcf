"""`retouch serve` as a client on the network meets it: over raw sockets, request headers have a
deadline that neither stalls other clients nor cuts off a body being uploaded, forwarded
headers and Host are believed only as configured, and metrics have a listener of their own."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.utils.images import composite, encode
from tests.utils.processes import ServeProcess, free_port, serve

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 3.0
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("serve")
    with serve(
        tmp / "serve.log",
        data_dir=str(tmp / "data"),
        header_timeout_seconds=str(HEADER_TIMEOUT),
        request_body_timeout_seconds=str(BODY_TIMEOUT),
        metrics_port=str(METRICS_PORT),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def key(node: ServeProcess) -> dict[str, str]:
    """The default account's key, which the first `retouch serve` prints once."""
    return {"X-API-KEY": next(w for w in node.output().split() if w.startswith("sk_"))}


def connect(node: ServeProcess) -> socket.socket:
    address = urlsplit(node.url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    data = b""
    while time.monotonic() - started < limit:
        if not select.select([sock], [], [], 0.05)[0]:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
    raise AssertionError(f"still open after {limit} s; received {data[:200]!r}")


def status_and_body(data: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_headers_trickling_in_are_cut_off_while_other_clients_are_served(
    node: ServeProcess,
) -> None:
    # 20 clients send a request line and headers one byte at a time, 5 connect and say nothing.
    request = b"GET /v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100
    trickling = [connect(node) for _ in range(20)]
    silent = [connect(node) for _ in range(5)]
    started = time.monotonic()
    open_at: dict[socket.socket, int] = {sock: 0 for sock in trickling + silent}
    closed: dict[socket.socket, float] = {}
    latencies: list[float] = []
    with httpx.Client(base_url=node.url, timeout=10) as http:
        while open_at and time.monotonic() - started < 4 * HEADER_TIMEOUT + 2:
            for sock in select.select(list(open_at), [], [], 0.1)[0]:
                try:
                    sock.recv(65536)
                except ConnectionResetError:
                    pass
                closed[sock] = time.monotonic() - started
                del open_at[sock]
            for sock in [s for s in open_at if s in trickling]:
                try:
                    sock.send(request[open_at[sock] : open_at[sock] + 1])
                    open_at[sock] += 1
                except OSError:  # closed meanwhile: the next select sees it
                    pass
            asked = time.monotonic()
            assert http.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - asked)
    for sock in trickling + silent:
        sock.close()
    assert not open_at, f"{len(open_at)} slow connections still held"
    assert all(HEADER_TIMEOUT - 0.1 <= at <= HEADER_TIMEOUT + 1.0 for at in closed.values()), (
        sorted(closed.values())
    )
    assert max(latencies) < 1.0, latencies


def test_a_stalled_request_gets_408_on_first_and_later_requests(
    node: ServeProcess, key: dict[str, str]
) -> None:
    with connect(node) as sock:
        sock.sendall(b"GET /v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API")
        data, waited = read_until_closed(sock, 5)
    assert HEADER_TIMEOUT - 0.1 <= waited <= HEADER_TIMEOUT + 1.0
    status, body = status_and_body(data)
    assert (status, body["error_code"]) == (408, "request_timeout")

    # On a kept-alive connection the next request's deadline starts when the previous answer
    # ends, whether the client stalls mid-request or keeps the line busy with bare CRLFs (which
    # would restart uvicorn's keep-alive timeout for ever).
    request = b"GET /v1/credits HTTP/1.1\r\nX-Slow: " + b"a" * 100
    for filler, status in ((request, 408), (b"\r\n" * 100, None)):
        with connect(node) as sock:
            sock.sendall(
                f"GET /v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {key['X-API-KEY']}"
                "\r\n\r\n".encode()
            )
            first = b""
            while b'"}' not in first:
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            answered = time.monotonic()
            sent = 0
            while not select.select([sock], [], [], 0.25)[0]:
                assert time.monotonic() - answered < HEADER_TIMEOUT + 1.0, "never cut off"
                sock.sendall(filler[sent : sent + 2])
                sent += 2
            data, _ = read_until_closed(sock, 5)
        assert HEADER_TIMEOUT - 0.1 <= time.monotonic() - answered <= HEADER_TIMEOUT + 1.0
        # A request begun is told why; a connection that never began one is closed silently.
        assert (status_and_body(data)[0] if data else None) == status


def test_headers_past_64_kib_are_refused_and_shorter_ones_served(
    node: ServeProcess, key: dict[str, str]
) -> None:
    with httpx.Client(base_url=node.url, headers=key, timeout=10) as http:
        assert http.get("/v1/credits", headers={"X-Padding": "a" * 40_000}).status_code == 200
    with connect(node) as sock:
        # Header lines past the limit, never the blank line that ends them: refused at once,
        # not at the deadline. (Then silent, so the server reads all before it closes: bytes
        # still arriving at a closed socket would make the kernel reset the connection.)
        sock.sendall(b"GET /v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.sendall((b"X-Padding: " + b"a" * 8000 + b"\r\n") * 9)
        data, waited = read_until_closed(sock, 5)
    assert waited < HEADER_TIMEOUT / 2
    status, body = status_and_body(data)
    assert (status, body["error_code"]) == (431, "request_header_fields_too_large")


def test_a_slow_body_still_gets_its_own_deadline(node: ServeProcess, key: dict[str, str]) -> None:
    # The header deadline ends with the headers: an upload keeps RETOUCH_REQUEST_BODY_TIMEOUT's.
    with connect(node) as sock:
        sock.sendall(
            (
                f"POST /v1/remove-background HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"X-API-KEY: {key['X-API-KEY']}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n{"
            ).encode()
        )
        started = time.monotonic()
        while not select.select([sock], [], [], 0.3)[0]:
            assert time.monotonic() - started < BODY_TIMEOUT + 2, "no answer to a stalled upload"
            sock.sendall(b" ")
        data, _ = read_until_closed(sock, 5)
        answered = time.monotonic() - started
    assert BODY_TIMEOUT - 0.2 <= answered <= BODY_TIMEOUT + 1.5
    status, body = status_and_body(data)
    assert (status, body["error_code"]) == (408, "request_timeout")


def test_forwarded_headers_from_an_unconfigured_proxy_and_foreign_hosts_never_reach_a_url(
    node: ServeProcess, key: dict[str, str]
) -> None:
    image = {"image": ("a.png", encode(composite("flat")[0][::2, ::2].copy()))}
    with httpx.Client(base_url=node.url, headers=key, timeout=60) as http:
        # A loopback client is no proxy unless RETOUCH_FORWARDED_ALLOW_IPS says so.
        made = http.post(
            "/v1/remove-background", files=image, headers={"X-Forwarded-Proto": "https"}
        )
        assert made.status_code == 200, made.text
        assert made.json()["result_url"].startswith(f"{node.url}/v1/results/")
        spoofed = http.post(
            "/v1/remove-background", files=image, headers={"Host": "evil.example:1"}
        )
        assert spoofed.status_code == 400 and spoofed.json()["error_code"] == "invalid_parameter"
        assert http.get("/v1/credits").json() == {"credits_remaining": "99"}


def test_metrics_are_served_on_their_own_loopback_port_only(
    node: ServeProcess, key: dict[str, str]
) -> None:
    metrics = f"http://127.0.0.1:{METRICS_PORT}"
    assert httpx.get(f"{node.url}/healthz").status_code == 200
    assert httpx.get(f"{node.url}/metrics").status_code == 404
    assert httpx.get(f"{metrics}/v1/credits", headers=key).status_code == 404
    scraped = httpx.get(f"{metrics}/metrics")
    assert scraped.status_code == 200
    assert 'retouch_http_requests_total{method="GET",route="/healthz",status="200"}' in scraped.text
    # Loopback by default: not reachable on the machine's other addresses.
    outside = outside_address()
    if outside is not None:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((outside, METRICS_PORT), timeout=5).close()


def outside_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address

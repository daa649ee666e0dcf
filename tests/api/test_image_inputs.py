"""The shared image pipeline's failures, through /v1/remove-background: every 400 code of the
spec, each charging nothing; image_url fetching and its SSRF guard."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from PIL import Image

from retouch.app_state import Services
from retouch.billing import ledger
from tests.utils import fuzzing
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, encode

ENDPOINT = "/v1/remove-background"
PNG = encode(composite("flat")[0])


def png_of(width: int, height: int) -> bytes:
    return encode(np.full((height, width, 3), 128, np.uint8))


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (80, 80)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=10)


def assert_refused(
    response: httpx.Response, services: Services, account: TestAccount, code: str, status=400
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code and set(body) == {"error", "error_code"}
    with services.sessions() as session:
        assert ledger.balance(session, account_id=account.id) == 10
        assert ledger.ledger_sum(session, account_id=account.id) == 10


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        (
            {"content": b"image_url=x", "headers": {"Content-Type": "text/plain"}},
            "unsupported_content_type",
        ),
        ({"content": b"", "headers": {"Content-Type": "application/json"}}, "invalid_request_body"),
        (
            {"content": b"{nope", "headers": {"Content-Type": "application/json"}},
            "invalid_request_body",
        ),
        ({"json": ["image_url"]}, "invalid_request_body"),
        ({"json": {}}, "missing_parameter"),
        ({"json": {"format": "png"}}, "missing_parameter"),
        ({"data": {"crop": "true"}, "files": {"other": ("x", b"1")}}, "invalid_parameter"),
        (
            {"json": {"image_url": "https://example.com/a.png", "format": "jpg"}},
            "invalid_parameter",
        ),
        (
            {"json": {"image_url": "https://example.com/a.png", "margin": "50%"}},
            "invalid_parameter",
        ),
        (
            {"json": {"image_url": "https://example.com/a.png", "crop": "maybe"}},
            "invalid_parameter",
        ),
        (
            {
                "json": {
                    "image_url": "https://example.com/a.png",
                    "shadow": {"enabled": True, "opacity": 2},
                }
            },
            "invalid_parameter",
        ),
        ({"json": {"image_url": "ftp://example.com/a.png"}}, "invalid_parameter"),
        ({"files": {"image": ("a.png", b"\x89PNG\r\n\x1a\nnot really")}}, "malformed_image"),
        ({"files": {"image": ("a.bin", np.random.default_rng(0).bytes(5000))}}, "malformed_image"),
        ({"files": {"image": ("a.gif", gif())}}, "unsupported_image_format"),
        ({"files": {"image": ("a.png", png_of(6001, 64))}}, "resolution_too_high"),
        ({"files": {"image": ("a.png", png_of(63, 400))}}, "invalid_parameter"),
        ({"files": {"image": ("a.png", PNG)}, "data": {"shadow": "{broken"}}, "invalid_parameter"),
    ],
)
def test_bad_input_gets_the_spec_code_and_costs_nothing(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    request_kwargs: dict[str, object],
    code: str,
) -> None:
    headers = {**account.headers, **request_kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = client.post(ENDPOINT, headers=headers, **request_kwargs)  # type: ignore[arg-type]
    assert_refused(response, services, account, code)


def test_no_foreground_is_unknown_foreground(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    transparent = np.zeros((200, 200, 4), np.uint8)
    response = client.post(
        ENDPOINT, headers=account.headers, files={"image": ("a.png", encode(transparent))}
    )
    assert_refused(response, services, account, "unknown_foreground")


@pytest.mark.settings(image_max_bytes=20_000)
def test_file_over_the_size_limit(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    noisy = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    response = client.post(
        ENDPOINT, headers=account.headers, files={"image": ("a.png", encode(noisy))}
    )
    assert_refused(response, services, account, "file_size_too_large")


@pytest.mark.settings(max_request_bytes=100_000)
def test_streamed_body_over_the_request_limit_is_cut_off(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"image_url": "https://example.com/'
        for _ in range(100):
            yield b"a" * 10_000

    response = client.post(
        ENDPOINT,
        headers={**account.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert_refused(response, services, account, "file_size_too_large")


def test_insufficient_credits_is_403_and_charges_nothing(
    client: httpx.Client, services: Services
) -> None:
    poor = make_account(services, "poor", credits=3)
    response = client.post(
        ENDPOINT,
        headers=poor.headers,
        files={"image": ("a.png", PNG)},
        data={"shadow": "true"},  # 1 + 3 credits
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == "insufficient_api_credits"
    with services.sessions() as session:
        assert ledger.balance(session, account_id=poor.id) == 3


def test_a_progressive_jpeg_scan_bomb_is_refused_at_once(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    """20,000 scans of a flat 1024 px square: 680 KB, and about 20 s of decoding here."""
    bomb = fuzzing.jpeg_scan_bomb(6_664)
    started = time.monotonic()
    response = client.post(
        ENDPOINT, headers=account.headers, files={"image": ("bomb.jpg", bomb, "image/jpeg")}
    )
    assert time.monotonic() - started < 2
    assert_refused(response, services, account, "malformed_image")
    assert "scans" in response.json()["error"]


# --- image_url ---------------------------------------------------------------------------


class _Origin(BaseHTTPRequestHandler):
    redirect_to = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/product.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("?to=", 1)[1])
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.settings(fetch_allow_networks=["127.0.0.1/32"])
def test_image_url_is_fetched_and_an_upload_wins_over_it(
    client: httpx.Client, services: Services, account: TestAccount, origin: str
) -> None:
    fetched = client.post(
        ENDPOINT, headers=account.headers, json={"image_url": f"{origin}/product.png"}
    )
    assert fetched.status_code == 200, fetched.text
    # A dead URL beside an uploaded file: the file is used.
    uploaded = client.post(
        ENDPOINT,
        headers=account.headers,
        files={"image": ("a.png", PNG)},
        data={"image_url": f"{origin}/missing.png"},
    )
    assert uploaded.status_code == 200
    missing = client.post(
        ENDPOINT, headers=account.headers, json={"image_url": f"{origin}/missing.png"}
    )
    assert missing.status_code == 400 and "HTTP 404" in missing.json()["error"]
    assert "image_url" in missing.json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.png",
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.png",
        "http://localhost/x.png",
    ],
)
def test_private_addresses_are_refused(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    url: str,
    connections: list[str],
) -> None:
    response = client.post(ENDPOINT, headers=account.headers, json={"image_url": url})
    assert_refused(response, services, account, "invalid_parameter")
    assert "not a public address" in response.json()["error"]
    assert connections == []


@pytest.mark.settings(fetch_allow_networks=["127.0.0.1/32"])
@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/", "http://10.0.0.1/x.png"])
def test_a_redirect_to_a_private_address_is_refused(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    origin: str,
    target: str,
    connections: list[str],
) -> None:
    response = client.post(
        ENDPOINT, headers=account.headers, json={"image_url": f"{origin}/redirect?to={target}"}
    )
    assert_refused(response, services, account, "invalid_parameter")
    assert "not a public address" in response.json()["error"]
    assert connections == ["127.0.0.1"]  # the origin, and nothing after the redirect


# Hosts that are ASCII but no valid IDNA A-label: httpx accepts the URL and fails when the host
# is read, which must be a 400 wherever the URL comes from.
BAD_IDNA_URLS = ["http://xn--/a.png", "https://xn--zz.example/a.png", "http://xn--a/a.png"]


@pytest.mark.parametrize("url", BAD_IDNA_URLS)
@pytest.mark.parametrize("form", ["json", "multipart"])
def test_an_image_url_whose_host_fails_idna_is_a_400(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    url: str,
    form: str,
    connections: list[str],
) -> None:
    # A (None, text) file tuple is how httpx sends a plain field as multipart.
    body = {"json": {"image_url": url}} if form == "json" else {"files": {"image_url": (None, url)}}
    response = client.post(ENDPOINT, headers=account.headers, **body)  # type: ignore[arg-type]
    assert_refused(response, services, account, "invalid_parameter")
    assert "image_url" in response.json()["error"]
    assert connections == []


@pytest.mark.settings(fetch_allow_networks=["127.0.0.1/32"])
@pytest.mark.parametrize("target", BAD_IDNA_URLS)
def test_a_redirect_to_a_host_that_fails_idna_is_a_400(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    origin: str,
    target: str,
    connections: list[str],
) -> None:
    response = client.post(
        ENDPOINT, headers=account.headers, json={"image_url": f"{origin}/redirect?to={target}"}
    )
    assert_refused(response, services, account, "invalid_parameter")
    assert "image_url could not be fetched" in response.json()["error"]
    assert connections == ["127.0.0.1"]

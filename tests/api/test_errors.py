"""Every failure answers the JSON envelope with the right status, and a request id."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retouch.app import create_app
from retouch.app_state import Services
from retouch.billing import ledger
from retouch.config import Settings
from tests.utils.calls import assert_envelope
from tests.utils.factories import make_account
from tests.utils.server import LiveServer


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    assert_envelope(client.get("/v1/nothing-here"), 404, "not_found")
    assert_envelope(client.delete("/v1/credits"), 405, "method_not_allowed")


def test_oversized_body_is_refused_before_it_is_read(
    server: LiveServer, services: Services
) -> None:
    # Announce a body one byte over the limit, send none of it, and get the answer anyway.
    declared = services.settings.max_request_bytes + 1
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/remove-background HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n".encode()
        )
        reply = sock.recv(65536).decode()
    head, _, body = reply.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400 ")
    assert json.loads(body)["error_code"] == "file_size_too_large"


def test_unexpected_exception_is_a_500_without_a_traceback(
    client: httpx.Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = make_account(services)

    def explode(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("secret internals /srv/retouch/ledger.py line 42")

    monkeypatch.setattr(ledger, "balance", explode)
    response = client.get("/v1/credits", headers=account.headers)
    assert_envelope(response, 500, "internal_error")
    assert response.json()["error"] == "Internal service error"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_request_ids_are_fresh_and_never_chosen_by_the_client(client: httpx.Client) -> None:
    # The request id keys the credit reservation: a client-chosen one could replay a charge.
    first = client.get("/v1/credits", headers={"X-Request-Id": "client-trace-0001"})
    second = client.get("/v1/credits", headers={"X-Request-Id": "client-trace-0001"})
    ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"], "client-trace-0001"}
    assert len(ids) == 3


@pytest.fixture
def server_without_database(tmp_path: Path) -> Iterator[LiveServer]:
    # Port 1 on loopback: nothing listens, so every connection is refused at once.
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2",
    )
    with LiveServer.start(create_app(settings)) as live:
        yield live


def test_database_outage_is_a_503_with_retry_after(server_without_database: LiveServer) -> None:
    response = httpx.get(
        f"{server_without_database.url}/v1/credits", headers={"X-API-KEY": "sk_whatever"}
    )
    assert_envelope(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "5"

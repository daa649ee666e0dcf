"""Security review, over real HTTP, as a client or an attacker sees the server: keys never at
rest or in logs in plain text, one account unable to reach another's jobs or idempotent
results, result URLs that cannot be forged or guessed, and bodies that cannot exhaust the
server by size or by slowness."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import select
import socket
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from retouch.app_state import Engines, Services
from retouch.billing import keys, ledger
from retouch.config import Settings
from retouch.db.models import Reservation
from retouch.logs import JsonFormatter
from tests.api.test_try_on import ScriptedTryOn, app_with, submit, wait_for
from tests.utils.calls import assert_envelope
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, encode
from tests.utils.processes import run_cli, serve
from tests.utils.server import LiveServer

REMOVE_BACKGROUND = "/v1/remove-background"
KEY = re.compile(r"sk_[A-Za-z0-9_-]{43}")
PRODUCT = encode(composite("flat")[0])
# Longer than the 7 random characters a key's shown prefix keeps, and long enough that random
# text never matches one by chance.
FRAGMENT = 12


def key_pieces(secret: str) -> list[str]:
    """The key, its random part, and every run of FRAGMENT characters of that part: a column or
    log line holding any of them would hold more of the key than its shown prefix."""
    random_part = secret.removeprefix(keys.KEY_PREFIX)
    runs = [random_part[i : i + FRAGMENT] for i in range(len(random_part) - FRAGMENT + 1)]
    return [secret, random_part, *runs]


def assert_no_key_in(text: str, secret: str, where: str) -> None:
    for piece in key_pieces(secret):
        assert piece not in text, f"{where} holds {piece!r} of the key"


def balance(services: Services, account: TestAccount) -> int:
    with services.sessions() as session:
        return ledger.balance(session, account_id=account.id)


def post_product(
    http: httpx.Client, account: TestAccount, *, image: bytes = PRODUCT, **headers: str
) -> httpx.Response:
    """A remove-background call answered with a ``result_url``, as most integrations make it."""
    return http.post(
        REMOVE_BACKGROUND,
        headers={**account.headers, **headers},
        files={"image": ("product.png", image, "image/png")},
    )


# --- keys at rest -----------------------------------------------------------------------


def test_keys_are_stored_only_as_hashes(
    services: Services, client: httpx.Client, tmp_path: Path, database_url: str
) -> None:
    account = make_account(services)
    assert client.get("/v1/credits", headers=account.headers).status_code == 200
    paid = post_product(client, account, **{"Idempotency-Key": "order-1"})
    assert paid.status_code == 200, paid.text
    assert client.get("/v1/credits", headers={"X-API-KEY": account.key + "x"}).status_code == 401

    cells: list[str] = []
    engine = sa.create_engine(database_url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(sa.select(table)):
                    cells.extend(
                        v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row
                    )
    finally:
        engine.dispose()
    # The rows this account's calls wrote are there to search: its key's hash, its idempotency
    # record.
    assert keys.hash_key(account.key) in cells and "order-1" in cells
    assert_no_key_in("\n".join(cells), account.key, "the database")

    # Everything on disk: the SQLite file and its WAL (when SQLite is the backend), results,
    # idempotent replays, signing secrets. The key's 32 raw bytes must not be there either.
    raw_key = base64.urlsafe_b64decode(account.key.removeprefix(keys.KEY_PREFIX) + "=")
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    if database_url.startswith("sqlite"):
        assert {"retouch.db", "retouch.db-wal"} <= {path.name for path in files}
    for path in files:
        data = path.read_bytes()
        assert raw_key not in data, path
        assert_no_key_in(data.decode("latin-1"), account.key, str(path))


# --- keys in logs -----------------------------------------------------------------------


def test_no_key_reaches_the_logs_of_a_real_server_at_debug_level(tmp_path: Path) -> None:
    # Extends test_cli's JSON-log check (a valid key, one malformed wrong key, INFO) to DEBUG,
    # a well-formed unknown key, keys sent where Retouch does not read them, and error paths.
    data = str(tmp_path / "data")
    created = run_cli("accounts", "create", "acme", "--credits", "3", data_dir=data)
    valid = KEY.search(created.stdout)
    assert valid
    unknown = keys.KEY_PREFIX + secrets.token_urlsafe(32)
    log = tmp_path / "serve.log"
    with (
        serve(log, data_dir=data, log_json="true", log_level="DEBUG") as node,
        httpx.Client(base_url=node.url, timeout=30) as http,
    ):
        key = {"X-API-KEY": valid.group()}
        attempts = [
            (http.get("/v1/credits", headers=key), 200),
            # A paid call: its image decoding is what logs at DEBUG (Pillow's PNG chunks).
            (http.post(REMOVE_BACKGROUND, headers=key, files={"image": ("a.png", PRODUCT)}), 200),
            (http.get("/v1/credits", headers={"X-API-KEY": unknown}), 401),
            (http.post(REMOVE_BACKGROUND, headers=key, content=b"{"), 400),
            (http.get("/v1/no-such-path", headers=key), 404),
            # Keys are read only from X-API-KEY: one sent where other APIs expect it, or in the
            # URL (where proxies and servers log it), is refused rather than quietly honoured.
            (http.get("/v1/credits", headers={"Authorization": f"Bearer {valid.group()}"}), 401),
            (http.get("/v1/credits", params={"api_key": valid.group()}), 401),
            (http.get("/v1/credits", params={"api_key": unknown}), 401),
        ]
        for response, status in attempts:
            assert response.status_code == status, response.text
        time.sleep(0.2)  # the last access lines reach the file
    output = log.read_text()
    levels = {json.loads(line)["level"] for line in output.splitlines() if line.startswith("{")}
    assert "DEBUG" in levels
    for secret in (valid.group(), unknown):
        assert_no_key_in(output, secret, "the server's output")


def test_a_failure_while_a_key_is_checked_logs_the_traceback_not_the_key(
    client: httpx.Client,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    account = make_account(services)

    def fail_mid_authentication(_secret: str) -> str:
        raise RuntimeError("hashing failed")

    monkeypatch.setattr(keys, "hash_key", fail_mid_authentication)
    assert client.get("/v1/credits", headers=account.headers).status_code == 500

    # Left out: the test client's own request log (httpx, httpcore), and uvicorn's access log,
    # which `retouch serve` turns off and pytest's capture turns back on.
    ignored = ("httpx", "httpcore", "uvicorn.access")
    records = [r for r in caplog.records if not r.name.startswith(ignored)]
    plain, as_json = logging.Formatter(), JsonFormatter()
    tracebacks = [as_json.format(r) for r in records if r.exc_info]
    assert tracebacks and "hashing failed" in tracebacks[0]
    for record in records:
        for rendered in (plain.format(record), as_json.format(record)):
            assert_no_key_in(rendered, account.key, f"log record {record.name}")


# --- isolation between accounts ---------------------------------------------------------


def test_another_account_cannot_see_or_cancel_a_running_job(
    settings: Settings, engines: Engines
) -> None:
    # Extends test_try_on's check on a finished job: here the job is live while it is probed.
    hold = threading.Event()
    engine = ScriptedTryOn(hold=hold)
    with app_with(settings, engines, engine) as (http, services):
        owner = make_account(services, credits=10)
        other = make_account(services, "other", credits=10)
        job_id = submit(http, owner, wait_for_result="false").json()["job_id"]
        assert engine.started.wait(10)
        unknown = str(uuid.uuid4())

        def probe(job: str) -> list[tuple[int, bytes]]:
            status = http.get(f"/v1/try-on/job/{job}", headers=other.headers)
            cancel = http.post(f"/v1/try-on/job/{job}/cancel", headers=other.headers)
            return [(status.status_code, status.content), (cancel.status_code, cancel.content)]

        # Word for word what an unknown id gets: nothing tells B the job exists.
        assert probe(job_id) == probe(unknown)
        assert probe(unknown)[0][0] == probe(unknown)[1][0] == 404
        hold.set()
        done = wait_for(http, owner, job_id, "completed")
        assert httpx.get(done["result_url"]).status_code == 200
        assert probe(job_id) == probe(unknown)
        assert balance(services, owner) == 9 and balance(services, other) == 10


def test_idempotency_keys_belong_to_one_account(client: httpx.Client, services: Services) -> None:
    # Extends test_remove_background's check that another account's identical key runs anew.
    owner = make_account(services, credits=5)
    other = make_account(services, "other", credits=5)
    third = make_account(services, "third", credits=5)
    shared = {"Idempotency-Key": "invoice-2024-001"}

    first = post_product(client, owner, **shared)
    theirs = post_product(client, other, **shared)
    assert first.status_code == theirs.status_code == 200
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.headers["X-Credits-Charged"] == "1" and balance(services, other) == 4

    def result_path(response: httpx.Response) -> str:
        return urlsplit(response.json()["result_url"]).path

    assert result_path(theirs) != result_path(first)
    # A different request under the owner's key is no 422 for another account: that answer would
    # tell it the key is taken.
    different = post_product(client, third, image=encode(composite("gradient")[0]), **shared)
    assert different.status_code == 200 and "Idempotent-Replayed" not in different.headers

    replay = post_product(client, owner, **shared)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert result_path(replay) == result_path(first)
    assert balance(services, owner) == 4


# --- result URLs ------------------------------------------------------------------------


def signed_path(services: Services, key: str, *, expires_in: timedelta) -> str:
    """A correctly signed URL for ``key``: what an attacker holding the signing secret could
    forge, so the key alone must keep results unreachable."""
    expires_at = services.clock() + expires_in
    return f"/v1/results/{key}?{services.signer.sign(key, expires_at)}"


def test_result_urls_are_capabilities(client: httpx.Client, services: Services) -> None:
    account = make_account(services)
    url = urlsplit(post_product(client, account).json()["result_url"])
    key = url.path.removeprefix("/v1/results/")
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    signature, expires = query["signature"], query["expires"]
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    tampered = [
        {"expires": expires, "signature": flipped},
        {"expires": expires, "signature": signature[:-1]},
        {"expires": expires, "signature": "not-a-signature"},
        {"expires": expires, "signature": "é" + signature[1:]},
        {"expires": expires},
        {"signature": signature},
        {},
        {"expires": str(int(expires) + 3600), "signature": signature},
        {"expires": str(int(expires) - 1), "signature": signature},
        {"expires": f"+{expires}", "signature": signature},
    ]
    answers = {
        (r.status_code, r.content)
        for r in (client.get(url.path, params=params) for params in tampered)
    }
    # A real, unexpired result signed for a moment that has passed.
    expired = client.get(signed_path(services, key, expires_in=timedelta(seconds=-1)))
    answers.add((expired.status_code, expired.content))
    assert answers == {(404, gone_body(client, services))}
    assert client.get(f"{url.path}?{url.query}").status_code == 200


def gone_body(client: httpx.Client, services: Services) -> bytes:
    """What a well-formed, correctly signed URL for a result that never existed gets."""
    never = f"{secrets.token_urlsafe(32)}.png"
    response = client.get(signed_path(services, never, expires_in=timedelta(hours=1)))
    assert_envelope(response, 404, "not_found")
    return response.content


def test_result_keys_cannot_be_guessed(client: httpx.Client, services: Services) -> None:
    expires_at = services.clock() + timedelta(hours=1)
    issued = [
        services.results.put(b"result", media_type="image/png", expires_at=expires_at)
        for _ in range(200)
    ]
    assert len(set(issued)) == len(issued)
    for key in issued:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}\.png", key)
        assert len(base64.urlsafe_b64decode(key.removesuffix(".png") + "=")) == 32  # 256 bits

    real = issued[0]
    hour = timedelta(hours=1)
    assert client.get(signed_path(services, real, expires_in=hour)).status_code == 200
    stem = real.removesuffix(".png")
    neighbours = [
        f"{stem[:i]}{'B' if stem[i] == 'A' else 'A'}{stem[i + 1 :]}.png" for i in (0, 21, 42)
    ]
    sequential = ["A" * 43 + ".png", "0" * 43 + ".png", "0" * 42 + "1.png", "_" * 43 + ".png"]
    other_types = [f"{stem}.jpg", f"{stem}.webp"]
    wrong_shape = [stem, f"{stem}.gif", f"{real}x", f"{stem[:-1]}.png", "secret.key", "..."]
    answers = {
        (r.status_code, r.content)
        for r in (
            client.get(signed_path(services, guess, expires_in=hour))
            for guess in [*neighbours, *sequential, *other_types, *wrong_shape]
        )
    }
    assert answers == {(404, gone_body(client, services))}

    # Paths that try to leave the results folder never reach a file, e.g. the database beside
    # it, which holds the signing key.
    database = Path(services.settings.sqlalchemy_url.removeprefix("sqlite:///"))
    assert database.parent == services.settings.results_dir.parent.parent
    for path in ("/v1/results/..%2F..%2Fretouch.db", "/v1/results/%2E%2E%2F%2E%2E%2Fretouch.db"):
        response = client.get(path, params={"expires": "9999999999", "signature": "x"})
        assert response.status_code == 404 and database.read_bytes()[:16] not in response.content


# --- request bodies ---------------------------------------------------------------------


def connect(server: LiveServer) -> socket.socket:
    host, port = urlsplit(server.url).netloc.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


# The start of a multipart upload's file part; the file's bytes follow.
PART_HEAD = b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'


def upload_head(account: TestAccount, framing: str) -> bytes:
    return (
        f"POST {REMOVE_BACKGROUND} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {account.key}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\n{framing}\r\n\r\n"
    ).encode()


def readable(sock: socket.socket, wait: float) -> bool:
    return bool(select.select([sock], [], [], wait)[0])


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, str]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection without answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        body += chunk
    return int(status_line.split()[1]), headers, json.loads(body)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        # Bytes the client sent just as the server closed make the kernel answer with a reset:
        # closed all the same.
        return True


def assert_nothing_charged(services: Services, account: TestAccount, credits: int) -> None:
    assert balance(services, account) == credits
    with services.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Reservation)) == 0


@pytest.mark.settings(max_request_bytes=100_000)
def test_a_chunked_body_over_the_limit_is_refused_while_it_is_still_arriving(
    server: LiveServer, services: Services
) -> None:
    # test_errors covers a Content-Length over the limit; chunked bodies announce no length.
    account = make_account(services)
    limit = services.settings.max_request_bytes
    total = 20 * limit
    chunk = b"\0" * 8192
    with connect(server) as sock:
        sock.sendall(upload_head(account, "Transfer-Encoding: chunked"))
        sock.sendall(b"%x\r\n%s\r\n" % (len(PART_HEAD), PART_HEAD))
        sent = len(PART_HEAD)
        while sent < total and not readable(sock, 0.02):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        status, _, body = read_response(sock)
    assert (status, body["error_code"]) == (400, "file_size_too_large")
    assert limit < sent < total, "the answer came before the client had sent the whole body"
    assert_nothing_charged(services, account, 10)


@pytest.mark.settings(request_body_timeout_seconds=1)
@pytest.mark.parametrize("trickle", [b"\0" * 10, b""], ids=["slow-body", "no-body"])
def test_a_body_slower_than_its_deadline_gets_408_and_the_connection_closed(
    server: LiveServer, services: Services, client: httpx.Client, trickle: bytes
) -> None:
    account = make_account(services)
    with connect(server) as sock:
        sock.sendall(upload_head(account, "Content-Length: 10000") + (trickle and PART_HEAD))
        started = time.monotonic()
        # A few bytes of the file every 0.3 s: each read is quick, only the whole body is late.
        while not readable(sock, 0.3):
            assert time.monotonic() - started < 5, "no answer to a stalled upload"
            sock.sendall(trickle)
        answered = time.monotonic() - started
        status, headers, body = read_response(sock)
        assert (status, body["error_code"]) == (408, "request_timeout")
        assert set(body) == {"error", "error_code"} and headers["connection"] == "close"
        assert 0.9 <= answered < 3
        assert closed_by_server(sock)
    assert_nothing_charged(services, account, 10)

    # The server is not wedged, and an upload at an ordinary pace is within its deadline.
    assert client.get("/v1/credits", headers=account.headers).json() == {"credits_remaining": "10"}
    assert post_product(client, account).status_code == 200

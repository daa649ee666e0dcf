"""Crash safety with real processes: `retouch serve` and `retouch worker` killed with SIGKILL in
the middle of their work, then started again. Nothing a dead process held may be lost or charged
twice: its reservation is refunded once it expires, its job is retried or failed with a refund,
and the ledger still equals the balances."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from retouch.billing import ledger
from retouch.db.models import Account, Job, LedgerEntry, Reservation
from retouch.jobs.webhooks import account_key, verify
from tests.utils.db import empty_tables
from tests.utils.images import composite, encode
from tests.utils.people import garment_rgba, small_portrait
from tests.utils.processes import run_cli, serve, worker

pytestmark = pytest.mark.slow

# Large enough that the upscale takes a while, so the kill lands while it runs.
SLOW_IMAGE = encode(composite("blobs")[0][:320, :320].copy())


def wait_until(predicate: Callable[[], bool], seconds: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def db(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[sa.Engine]:
    """Workers scale out on PostgreSQL, so that is where they are crashed."""
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()
    empty_tables(postgres_url)


def create_account(settings: dict[str, str], credits: int) -> tuple[str, dict[str, str]]:
    created = run_cli("accounts", "create", "acme", "--credits", str(credits), **settings)
    assert created.returncode == 0, created.stderr
    key = next(word for word in created.stdout.split() if word.startswith("sk_"))
    return "acme", {"X-API-KEY": key}


def account_id(db: sa.Engine) -> int:
    """The id of the account ``create_account`` made."""
    with db.connect() as connection:
        found = connection.scalar(sa.select(Account.id).where(Account.name == "acme"))
    assert found is not None
    return found


def books(db: sa.Engine) -> tuple[int, int]:
    """The account's balance and the sum of its ledger, which must always agree."""
    acme = account_id(db)
    with Session(db) as session:
        return (
            ledger.balance(session, account_id=acme),
            ledger.ledger_sum(session, account_id=acme),
        )


def reservation_statuses(db: sa.Engine) -> list[str]:
    with db.connect() as connection:
        return list(connection.scalars(sa.select(Reservation.status).order_by(Reservation.id)))


def test_a_server_killed_mid_request_loses_no_credit(
    tmp_path: Path, database_url: str, db: sa.Engine
) -> None:
    settings = {
        "data_dir": str(tmp_path / "data"),
        "database_url": database_url,
        "redis_prefix": uuid.uuid4().hex,
        # A hold no live process finished is refunded after this; a sweep every second.
        "reservation_ttl_seconds": "5",
        "sweep_interval_seconds": "1",
    }
    _, headers = create_account(settings, credits=10)
    request = {
        "headers": {**headers, "Idempotency-Key": "order-42"},
        "files": {"image": ("slow.png", SLOW_IMAGE)},
        "data": {"scale": "4"},
        "timeout": 120,
    }

    with serve(tmp_path / "first.log", **settings) as node:
        outcome: list[BaseException | httpx.Response] = []

        def call() -> None:
            try:
                outcome.append(httpx.post(f"{node.url}/v1/upscale", **request))
            except httpx.TransportError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        # The credit is reserved before the work starts: kill the server while it works.
        assert wait_until(lambda: reservation_statuses(db) == ["reserved"], 30)
        node.process.kill()
        caller.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError), outcome
    # The dead process's hold is still charged, and the ledger says so too.
    assert books(db) == (9, 9)

    with serve(tmp_path / "second.log", **settings) as node:
        # The new process's sweeper refunds the expired hold: nothing lost, nothing charged.
        assert wait_until(lambda: books(db) == (10, 10), 30, interval=0.2), books(db)
        assert reservation_statuses(db) == ["released"]
        # The client's retry with the same key runs again (the dead request's claim on the
        # key expired with its hold) and is charged once.
        retried = httpx.post(f"{node.url}/v1/upscale", **request)
        while retried.status_code == 409:  # the key's lock outlives the hold by a moment
            time.sleep(float(retried.headers["Retry-After"]))
            retried = httpx.post(f"{node.url}/v1/upscale", **request)
        assert retried.status_code == 200, retried.text
        replayed = httpx.post(f"{node.url}/v1/upscale", **request)
        assert replayed.headers["Idempotent-Replayed"] == "true"
    assert books(db) == (9, 9)
    with db.connect() as connection:
        kinds = list(connection.scalars(sa.select(LedgerEntry.kind).order_by(LedgerEntry.id)))
    assert kinds == ["grant", "charge", "refund", "charge"]


def job_row(db: sa.Engine, job_id: str) -> tuple[str, int, str | None]:
    with db.connect() as connection:
        row = connection.execute(
            sa.select(Job.status, Job.attempts, Job.error_code).where(Job.id == job_id)
        ).one()
    return row.status, row.attempts, row.error_code


def submit(url: str, headers: dict[str, str]) -> str:
    response = httpx.post(
        f"{url}/v1/try-on",
        headers=headers,
        files={
            "person_image": ("p.png", encode(small_portrait())),
            # A garment photo on white: extraction runs the segmenter too, so the job lasts.
            "garment_image": ("g.png", encode(garment_rgba("tshirt")[..., :3])),
        },
        data={"wait_for_result": "false"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def kill_worker_during(
    db: sa.Engine, job_id: str, attempt: int, log: Path, settings: dict[str, str]
) -> bool:
    """Start a worker and SIGKILL it while it runs ``attempt`` of the job; False when the job
    ended before the poll caught it running (then the caller tries another job)."""
    with worker(log, **settings) as process:
        assert wait_until(
            lambda: (
                job_row(db, job_id)[:2] == ("running", attempt)
                or job_row(db, job_id)[0] in ("completed", "failed")
            ),
            60,
        ), log.read_text()
        if job_row(db, job_id)[:2] == ("running", attempt):
            process.kill()
            process.wait()
            return True
    return False


def interrupted_job(
    db: sa.Engine,
    url: str,
    headers: dict[str, str],
    log: Path,
    settings: dict[str, str],
    *,
    times: int,
) -> str:
    """A job whose worker was killed during each of its first ``times`` attempts."""
    for _ in range(3):
        job_id = submit(url, headers)
        if all(kill_worker_during(db, job_id, n, log, settings) for n in range(1, times + 1)):
            return job_id
    raise AssertionError("every job finished before its worker could be killed")


def test_a_worker_killed_mid_job_is_retried_or_failed_and_refunded(
    tmp_path: Path, postgres_url: str, postgres: sa.Engine
) -> None:
    db = postgres
    settings = {
        "data_dir": str(tmp_path / "data"),
        "database_url": postgres_url,
        "redis_prefix": uuid.uuid4().hex,
        "run_jobs": "false",
        # Silent for three beats (1.5 s) means orphaned; looked for at every sweep, by the API
        # node and the workers alike (all with the default two attempts per job).
        "job_heartbeat_seconds": "0.5",
        "sweep_interval_seconds": "1",
    }
    _, headers = create_account(settings, credits=100)
    log = tmp_path / "worker.log"
    with serve(tmp_path / "api.log", **settings) as api:
        interrupted = interrupted_job(db, api.url, headers, log, settings, times=1)
        assert job_row(db, interrupted)[:2] == ("running", 1)
        with worker(log, **settings):
            # Its heartbeat stopped: a live process requeues it and the next worker runs it.
            assert wait_until(lambda: job_row(db, interrupted)[0] == "completed", 60)
        assert job_row(db, interrupted)[:2] == ("completed", 2)
        document = httpx.get(f"{api.url}/v1/try-on/job/{interrupted}", headers=headers).json()
        assert document["status"] == "completed" and document["result_url"]

        # Killed during both of its attempts, a job fails and its credits come back.
        abandoned = interrupted_job(db, api.url, headers, log, settings, times=2)
        with worker(log, **settings):
            assert wait_until(lambda: job_row(db, abandoned)[0] == "failed", 60)
        assert job_row(db, abandoned) == ("failed", 2, "unexpected_error")
        with db.connect() as connection:
            refunded = connection.scalar(
                sa.select(Reservation.status).where(Reservation.request_id == abandoned)
            )
        assert refunded == "released"
        api_log = api.output()
    balance, total = books(db)
    assert balance == total
    # Every job that completed was charged exactly once, and nothing else was.
    with db.connect() as connection:
        completed = connection.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(Job.price), 0)).where(Job.status == "completed")
        )
    assert 100 - balance == completed
    assert "was interrupted; retrying" in api_log + log.read_text()


class FlakyReceiver(BaseHTTPRequestHandler):
    """A webhook receiver that asks for a retry half a minute away the first time, then takes
    the delivery: a server killed in that half minute must not lose it."""

    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        first = len(self.received) == 1
        self.send_response(503 if first else 204)
        if first:
            self.send_header("Retry-After", "30")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        """Quiet: the test reads what arrived, not the access log."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    FlakyReceiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", FlakyReceiver.received
    server.shutdown()
    server.server_close()


def test_a_webhook_interrupted_by_a_crash_is_delivered_after_restart(
    tmp_path: Path,
    sqlite_url: str,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = receiver
    master = "m" * 40
    settings = {
        "data_dir": str(tmp_path / "data"),
        "database_url": sqlite_url,
        "redis_prefix": uuid.uuid4().hex,
        "webhook_secret": master,
        "webhook_allow_networks": '["127.0.0.1/32"]',
        "job_heartbeat_seconds": "0.5",
        "sweep_interval_seconds": "1",
    }
    _, headers = create_account(settings, credits=10)
    with serve(tmp_path / "first.log", **settings) as node:
        response = httpx.post(
            f"{node.url}/v1/try-on",
            headers=headers,
            files={
                "person_image": ("p.png", encode(small_portrait())),
                "garment_image": ("g.png", encode(garment_rgba("tshirt"))),
            },
            data={"wait_for_result": "false", "preprocess_garment": "false", "webhook_url": url},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        # The first try is refused with Retry-After: 30; the server dies while it waits.
        assert wait_until(lambda: len(received) == 1, 60, interval=0.05), node.output()
        node.process.kill()

    with serve(tmp_path / "second.log", **settings):
        # The dead server's hold on the delivery lapses (three heartbeats) and the new one
        # resumes it at its next sweep, long before the 30 s the first try was asked to wait.
        assert wait_until(lambda: len(received) == 2, 20, interval=0.1)
    (first, _), (again, body) = received
    assert first["Retouch-Delivery"] == again["Retouch-Delivery"]
    document = json.loads(body)
    assert (document["job_id"], document["status"]) == (job_id, "completed")
    db = sa.create_engine(sqlite_url)
    try:
        # RETOUCH_WEBHOOK_SECRET is the master key itself.
        key = account_key(master.encode(), account_id(db))
        with db.connect() as connection:
            status = connection.scalar(sa.select(Job.webhook_status).where(Job.id == job_id))
    finally:
        db.dispose()
    assert verify(key, again["Retouch-Signature"], body, now=time.time())
    assert status == "delivered"

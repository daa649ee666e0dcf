"""Dependency outages while Retouch runs: PostgreSQL, Redis and S3 go away and come back.

Each dependency is reached through a ``TcpProxy`` the test cuts: ``refuse`` is a stopped server
(connections reset, new ones refused), ``blackhole`` an unreachable one (connections accepted,
never answered). Clients must get a prompt answer in Pixelcut's envelope, never a hang or a
traceback, be charged nothing for what failed, and be served again once the dependency returns,
without restarting Retouch.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import make_url

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.billing import ledger
from retouch.config import Settings
from retouch.maintenance import sweep_once
from tests.utils.calls import assert_envelope
from tests.utils.db import empty_tables
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, encode
from tests.utils.people import garment_rgba, small_portrait
from tests.utils.processes import worker
from tests.utils.proxy import TcpProxy
from tests.utils.seaweed import Seaweed
from tests.utils.server import LiveServer

IMAGE = encode(composite("flat")[0][::4, ::4].copy())
# What "promptly" means: well inside a client's timeout, far from a hang. A request may meet
# the database's connect timeout (here 2 s) or S3's once.
PROMPT_SECONDS = 8


@contextmanager
def running(settings: Settings, engines: Engines) -> Iterator[tuple[Services, LiveServer]]:
    services = Services.create(settings, engines=engines)
    try:
        with LiveServer.start(create_app(settings, services)) as live:
            yield services, live
    finally:
        services.close()


def balance(services: Services, account: TestAccount) -> int:
    """The balance, checked against the ledger it must always equal."""
    with services.sessions() as session:
        value = ledger.balance(session, account_id=account.id)
        assert value == ledger.ledger_sum(session, account_id=account.id)
        return value


def remove_background(http: httpx.Client, account: TestAccount) -> httpx.Response:
    return http.post(
        "/v1/remove-background", headers=account.headers, files={"image": ("a.png", IMAGE)}
    )


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    real = make_url(postgres_url)
    with TcpProxy.running(real.host or "127.0.0.1", real.port or 5432) as proxy:
        # A shorter connect timeout than Retouch's default, in the URL as an operator would set
        # it: the blackholed connects below wait for it.
        proxied = real.set(port=proxy.port).update_query_dict({"connect_timeout": "2"})
        yield proxy, proxied.render_as_string(hide_password=False)
    empty_tables(postgres_url)


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[tuple[TcpProxy, str]]:
    real = urlsplit(redis_url)
    with TcpProxy.running(real.hostname or "127.0.0.1", real.port or 6379) as proxy:
        yield proxy, f"redis://127.0.0.1:{proxy.port}{real.path}"


def test_postgresql_outage_is_a_prompt_503_and_heals_without_restart(
    settings: Settings, postgres_proxy: tuple[TcpProxy, str], engines: Engines
) -> None:
    proxy, url = postgres_proxy
    settings = settings.model_copy(update={"database_url": url})
    with (
        running(settings, engines) as (services, live),
        httpx.Client(base_url=live.url, timeout=60) as http,
    ):
        account = make_account(services, credits=5)
        assert http.get("/v1/credits", headers=account.headers).status_code == 200

        for outage in (proxy.refuse, proxy.blackhole):
            outage()
            for call in (
                lambda: http.get("/v1/credits", headers=account.headers),
                lambda: remove_background(http, account),
            ):
                response, seconds = timed(call)
                assert_envelope(response, 503, "service_unavailable")
                assert response.headers["Retry-After"] == "5"
                assert seconds < PROMPT_SECONDS, outage.__name__

        proxy.restore()
        # The same process reconnects: the first request after the outage is served.
        assert http.get("/v1/credits", headers=account.headers).json() == {"credits_remaining": "5"}
        made = remove_background(http, account)
        assert made.status_code == 200, made.text
        assert made.headers["X-Credits-Remaining"] == "4"
        # Nothing the outage refused was charged; the ledger still equals the balance.
        assert balance(services, account) == 4


def test_a_node_starts_while_postgresql_is_down_and_signs_once_it_returns(
    settings: Settings, postgres_proxy: tuple[TcpProxy, str], engines: Engines
) -> None:
    """The signing keys live in the database: a node that could not read them at start loads
    them at first use, and until then answers 503, never 500, nor 404 for a good URL."""
    proxy, url = postgres_proxy
    settings = settings.model_copy(update={"database_url": url})
    proxy.refuse()
    with (
        running(settings, engines) as (services, live),
        httpx.Client(base_url=live.url, timeout=60) as http,
    ):
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
        someone_elses = f"/v1/results/{'A' * 43}.png?expires=9999999999&signature=x"
        response, seconds = timed(lambda: http.get(someone_elses))
        assert_envelope(response, 503, "service_unavailable")
        assert seconds < PROMPT_SECONDS

        proxy.restore()
        account = make_account(services, credits=5)
        made = remove_background(http, account)
        assert made.status_code == 200, made.text
        link = urlsplit(made.json()["result_url"])
        assert http.get(f"{link.path}?{link.query}").status_code == 200
        assert http.get(someone_elses).status_code == 404


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_outage_fails_the_rate_limit_open_or_closed_then_heals(
    settings: Settings, redis_proxy: tuple[TcpProxy, str], engines: Engines, fail_open: bool
) -> None:
    proxy, url = redis_proxy
    settings = settings.model_copy(update={"redis_url": url, "rate_limit_fail_open": fail_open})
    with (
        running(settings, engines) as (services, live),
        httpx.Client(base_url=live.url, timeout=60) as http,
    ):
        account = make_account(services, credits=5, rate_limit=2)

        def burst() -> list[int]:
            return [http.get("/v1/credits", headers=account.headers).status_code for _ in range(4)]

        assert burst() == [200, 200, 429, 429]
        time.sleep(1.1)

        # A blackholed Redis differs from a stopped one only in how long each call waits for
        # it, which is the same whichever way the limiter fails: timed once, failing open.
        for outage in (proxy.refuse, proxy.blackhole) if fail_open else (proxy.refuse,):
            outage()
            started = time.monotonic()
            # One more than the limit: failing open serves them all.
            responses = [http.get("/v1/credits", headers=account.headers) for _ in range(3)]
            # A blackholed Redis costs each request its 2 s socket timeouts, never more.
            assert time.monotonic() - started < 3 * PROMPT_SECONDS
            if fail_open:
                assert [r.status_code for r in responses] == [200] * 3
            else:
                for response in responses:
                    assert_envelope(response, 429, "rate_limit_exceeded")
                    assert response.headers["Retry-After"] == "1"

        proxy.restore()
        time.sleep(1.1)
        # The shared limit is back without a restart.
        assert burst() == [200, 200, 429, 429]


def test_try_on_submitted_while_redis_is_down_still_runs(
    settings: Settings, redis_proxy: tuple[TcpProxy, str], engines: Engines
) -> None:
    """A serving process that runs jobs keeps taking them when the queue is unreachable."""
    proxy, url = redis_proxy
    settings = settings.model_copy(update={"redis_url": url})
    with (
        running(settings, engines) as (services, live),
        httpx.Client(base_url=live.url, timeout=60) as http,
    ):
        account = make_account(services, credits=5)
        proxy.refuse()
        job_id = submit_try_on(http, account)
        assert wait_for_job(http, account, job_id)["status"] == "completed"
        assert balance(services, account) == 4


def submit_try_on(http: httpx.Client, account: TestAccount) -> str:
    response = http.post(
        "/v1/try-on",
        headers=account.headers,
        files={
            "person_image": ("p.png", encode(small_portrait())),
            "garment_image": ("g.png", encode(garment_rgba("tshirt"))),
        },
        data={"wait_for_result": "false", "preprocess_garment": "false"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_for_job(
    http: httpx.Client, account: TestAccount, job_id: str, seconds: float = 60
) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        document: dict[str, object] = http.get(
            f"/v1/try-on/job/{job_id}", headers=account.headers
        ).json()
        if document["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return document
        time.sleep(0.2)


@pytest.mark.slow
def test_a_worker_rides_out_a_redis_outage(
    tmp_path: Path, sqlite_url: str, redis_proxy: tuple[TcpProxy, str], engines: Engines
) -> None:
    """API nodes that leave jobs to workers: while Redis is down the worker finds jobs in the
    database; when it returns, the worker is back on the queue without a restart."""
    proxy, url = redis_proxy
    shared = {
        "data_dir": str(tmp_path / "data"),
        "database_url": sqlite_url,
        "redis_url": url,
        "redis_prefix": uuid.uuid4().hex,
        "run_jobs": "false",
    }
    settings = Settings(**shared)  # type: ignore[arg-type]
    log_path = tmp_path / "worker.log"
    with (
        running(settings, engines) as (services, live),
        httpx.Client(base_url=live.url, timeout=60) as http,
    ):
        account = make_account(services, credits=5)
        with worker(log_path, **shared):
            proxy.refuse()
            during = submit_try_on(http, account)
            assert wait_for_job(http, account, during)["status"] == "completed", (
                log_path.read_text()
            )
            proxy.restore()
            after = submit_try_on(http, account)
            assert wait_for_job(http, account, after)["status"] == "completed", log_path.read_text()
        assert balance(services, account) == 3
    output = log_path.read_text()
    assert "job queue unavailable; polling the database" in output
    assert "job queue reachable again" in output


@pytest.mark.usefixtures("aws_env")
def test_s3_outage_fails_requests_cleanly_and_charges_nothing(
    settings: Settings, seaweed: Seaweed, engines: Engines
) -> None:
    s3 = urlsplit(seaweed.endpoint_url)
    with TcpProxy.running(s3.hostname or "127.0.0.1", s3.port or 80) as proxy:
        settings = settings.model_copy(
            update={
                "results_url": f"s3://outage-{uuid.uuid4().hex[:8]}/results",
                "s3_endpoint_url": f"http://127.0.0.1:{proxy.port}",
            }
        )
        with (
            running(settings, engines) as (services, live),
            httpx.Client(base_url=live.url, timeout=60) as http,
        ):
            account = make_account(services, credits=5)
            made = remove_background(http, account)
            assert made.status_code == 200, made.text
            link = urlsplit(made.json()["result_url"])
            result = f"{link.path}?{link.query}"

            proxy.refuse()
            # Readiness says what is down, so a load balancer can take the node out meanwhile.
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["storage"] is False
            response, seconds = timed(lambda: remove_background(http, account))
            assert_envelope(response, 503, "service_unavailable")
            assert response.headers["Retry-After"] == "5"
            assert seconds < PROMPT_SECONDS
            assert_envelope(http.get(result), 503, "service_unavailable")
            # The image itself needs no storage, so it is still delivered (and charged).
            direct = http.post(
                "/v1/remove-background",
                headers={**account.headers, "Accept": "image/png"},
                files={"image": ("a.png", IMAGE)},
            )
            assert direct.status_code == 200
            assert balance(services, account) == 3

            proxy.restore()
            assert http.get("/readyz").status_code == 200
            assert http.get(result).status_code == 200
            assert remove_background(http, account).status_code == 200
            assert balance(services, account) == 2


@pytest.mark.usefixtures("aws_env")
def test_a_node_starts_while_s3_is_down_and_serves_once_it_returns(
    settings: Settings, seaweed: Seaweed, engines: Engines
) -> None:
    s3 = urlsplit(seaweed.endpoint_url)
    with TcpProxy.running(s3.hostname or "127.0.0.1", s3.port or 80) as proxy:
        proxy.refuse()
        settings = settings.model_copy(
            update={
                # A bucket that does not exist yet: the node must create it once S3 is back.
                "results_url": f"s3://boot-{uuid.uuid4().hex[:8]}/results",
                "s3_endpoint_url": f"http://127.0.0.1:{proxy.port}",
            }
        )
        with (
            running(settings, engines) as (services, live),
            httpx.Client(base_url=live.url, timeout=60) as http,
        ):
            account = make_account(services, credits=5)
            ready = http.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"] == {"database": True, "storage": False, "models": True}
            response, seconds = timed(lambda: remove_background(http, account))
            assert_envelope(response, 503, "service_unavailable")
            assert seconds < PROMPT_SECONDS
            assert balance(services, account) == 5
            # Storage being down holds back no refund of a reservation a dead process left.
            services.ledger.reserve(
                account_id=account.id, request_id="abandoned", endpoint="test", amount=1
            )
            later = services.clock() + timedelta(seconds=settings.reservation_ttl_seconds + 1)
            sweep_once(dataclasses.replace(services, clock=lambda: later))
            assert balance(services, account) == 5

            proxy.restore()
            assert http.get("/readyz").status_code == 200
            made = remove_background(http, account)
            assert made.status_code == 200, made.text
            link = urlsplit(made.json()["result_url"])
            assert http.get(f"{link.path}?{link.query}").status_code == 200
            assert balance(services, account) == 4

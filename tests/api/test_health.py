"""/healthz, /readyz and /metrics as an operator's probes and scraper meet them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.config import Settings
from retouch.db import migrate
from tests.utils.calls import assert_envelope
from tests.utils.factories import make_account
from tests.utils.images import composite, encode
from tests.utils.processes import free_port
from tests.utils.server import LiveServer


def test_liveness_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": True, "storage": True, "models": True},
    }


@pytest.mark.parametrize("broken", ["database", "redis", "storage"])
def test_readiness_reports_what_is_down(
    tmp_path: Path, engines: Engines, redis_url: str, broken: str
) -> None:
    database = f"sqlite:///{tmp_path / 'retouch.db'}"
    migrate.upgrade(database)
    settings = Settings(
        data_dir=tmp_path,
        database_url=(
            "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
            if broken == "database"
            else database
        ),
        redis_url="redis://127.0.0.1:1/0" if broken == "redis" else redis_url,
    )
    services = Services.create(settings, engines=engines)
    if broken == "storage":
        # The results volume went away under a running node.
        shutil.rmtree(settings.results_dir)
    try:
        with LiveServer.start(create_app(settings, services)) as live:
            response = httpx.get(f"{live.url}/readyz", timeout=30)
    finally:
        services.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {
        "database": broken != "database",
        "redis": broken != "redis",
        "storage": broken != "storage",
        "models": True,
    }


@pytest.fixture
def metered(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """The app with RETOUCH_METRICS_PORT set, serving metrics on that second port."""
    with_metrics = settings.model_copy(update={"metrics_port": free_port()})
    app = create_app(with_metrics, services)
    with LiveServer.start(app, metrics_port=with_metrics.metrics_port) as live:
        yield live


def test_metrics_count_requests_credits_and_work(metered: LiveServer, services: Services) -> None:
    account = make_account(services, credits=10)
    client = httpx.Client(base_url=metered.url, timeout=30)
    client.post(
        "/v1/remove-background",
        headers=account.headers,
        files={"image": ("a.png", encode(composite("flat")[0]))},
        data={"shadow": "true"},
    )
    client.get("/v1/credits", headers={"X-API-KEY": "wrong"})
    client.get(f"/v1/try-on/job/{'x' * 30}", headers=account.headers)
    client.get("/no/such/path")
    client.close()

    assert metered.metrics_url is not None
    response = httpx.get(f"{metered.metrics_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'retouch_http_requests_total{method="POST",route="/v1/remove-background",status="200"} 1.0'
        in text
    )
    assert 'retouch_http_requests_total{method="GET",route="/v1/credits",status="401"} 1.0' in text
    # Path parameters are not label values; unknown paths share one series.
    assert 'route="/v1/try-on/job/{jobId}",status="404"' in text
    assert 'route="unmatched",status="404"' in text
    assert 'retouch_credits_charged_total{endpoint="remove-background"} 4.0' in text
    assert 'retouch_operation_seconds_count{endpoint="remove-background"} 1.0' in text
    assert "retouch_work_queue_depth 0.0" in text


def test_metrics_are_served_only_on_their_own_port(
    metered: LiveServer, client: httpx.Client
) -> None:
    # Per-endpoint credit totals are business data: not on the API's port, with or without the
    # setting, and the metrics port (loopback by default) serves nothing of the API.
    for api in (metered.url, str(client.base_url).rstrip("/")):
        assert_envelope(httpx.get(f"{api}/metrics"), 404, "not_found")
    assert "/metrics" not in httpx.get(f"{metered.url}/openapi.json").json()["paths"]
    for path in ("/v1/credits", "/healthz", "/", "/metrics/x"):
        refused = httpx.get(f"{metered.metrics_url}{path}")
        assert refused.status_code == 404 and refused.json()["error_code"] == "not_found"
    assert httpx.get(f"{metered.metrics_url}/metrics").status_code == 200

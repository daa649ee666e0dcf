"""Fixtures: settings per database backend, the services, and a live HTTP server.

PostgreSQL and Redis tests run against the servers on 127.0.0.1. In CI (``CI`` set) an
unreachable server fails the run; elsewhere those tests skip with the reason.
"""

from __future__ import annotations

import os

# As `retouch serve` does, before ncnn's OpenMP runtime loads (see cli.serve).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import redis
import sqlalchemy as sa

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.config import Settings
from retouch.db import migrate
from retouch.errors import InvalidParameter
from tests.utils import seaweed as seaweed_credentials
from tests.utils.db import empty_tables
from tests.utils.seaweed import Seaweed, running_seaweed
from tests.utils.server import LiveServer

POSTGRES_ADMIN_URL = os.environ.get(
    "RETOUCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RETOUCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, error: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} must be running in CI: {error}")
    pytest.skip(f"{what} is not reachable here: {error}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"retouch_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once per backend, on empty tables."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'retouch.db'}"
        migrate.upgrade(url)
        yield url
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    empty_tables(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests whose subject is not the database: the embedded default only."""
    url = f"sqlite:///{tmp_path / 'retouch.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """SQLite by default; a test that asks for ``database_url`` runs on every backend."""
    backend = "database_url" if "database_url" in request.fixturenames else "sqlite_url"
    marker = request.node.get_closest_marker("settings")
    return Settings(
        data_dir=tmp_path / "data",
        database_url=request.getfixturevalue(backend),
        redis_prefix=_prefix(),
        **(marker.kwargs if marker else {}),
    )


def _prefix() -> str:
    return f"retouch-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def engines() -> Engines:
    """The real default models, loaded once for the whole run as a process would."""
    return Engines.load(Settings())


@pytest.fixture
def services(settings: Settings, engines: Engines) -> Iterator[Services]:
    built = Services.create(settings, engines=engines)
    yield built
    built.close()


@pytest.fixture
def server(settings: Settings, services: Services) -> Iterator[LiveServer]:
    app = create_app(settings, services)
    with LiveServer.start(app, metrics_port=settings.metrics_port) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host the fetcher connects to; anything but loopback is refused before a packet
    leaves (this machine's network rules forbid traffic to private or public addresses)."""
    seen: list[str] = []
    connect = httpcore.AnyIOBackend.connect_tcp

    async def guarded(
        self: httpcore.AnyIOBackend, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        seen.append(host)
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"test refused a connection to {host}")
        return await connect(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", guarded)
    return seen


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, connections: list[str]) -> None:
    """For fuzzers, whose generated hostnames are arbitrary: ``image_url`` fetching answers
    "could not be fetched" and webhooks are never sent, so nothing leaves this machine."""

    async def no_fetching(url: str, **_kwargs: object) -> bytes:
        raise InvalidParameter(
            f"image_url could not be fetched: {url!r} (fetching is off in tests)"
        )

    async def no_delivery(*_args: object, **_kwargs: object) -> bool:
        return False

    monkeypatch.setattr("retouch.api.inputs.fetch_url", no_fetching)
    monkeypatch.setattr("retouch.jobs.runner.deliver", no_delivery)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    with running_seaweed(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3's standard credential chain finds these; nothing of the developer's AWS setup
    (profiles, region, endpoint overrides) reaches the tests."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed_credentials.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed_credentials.SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

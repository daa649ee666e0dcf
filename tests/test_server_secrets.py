"""The keys result URLs and webhooks are signed with: set by the operator, or generated once and
kept in the database, so every node on that database signs and verifies with the same ones."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.config import Settings
from retouch.db.engine import create_db_engine, create_session_factory
from retouch.db.models import ServerSecret
from retouch.jobs.webhooks import account_key
from retouch.server_secrets import ServerSecrets, load_server_secrets
from retouch.storage.signing import UrlSigner
from tests.utils.db import empty_tables
from tests.utils.factories import make_account
from tests.utils.images import composite, encode
from tests.utils.processes import run_cli
from tests.utils.seaweed import Seaweed
from tests.utils.server import LiveServer

IMAGE = encode(composite("flat")[0][::4, ::4].copy())


@contextmanager
def node(settings: Settings, engines: Engines) -> Iterator[tuple[Services, httpx.Client]]:
    services = Services.create(settings, engines=engines)
    try:
        with (
            LiveServer.start(create_app(settings, services)) as live,
            httpx.Client(base_url=live.url, timeout=60) as http,
        ):
            yield services, http
    finally:
        services.close()


def stored_names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(connection.scalars(sa.select(ServerSecret.name)))
    finally:
        engine.dispose()


@pytest.mark.usefixtures("aws_env")
def test_two_nodes_on_one_postgresql_sign_with_the_same_generated_keys(
    tmp_path: Path, postgres_url: str, seaweed: Seaweed, engines: Engines
) -> None:
    """Neither RETOUCH_RESULT_SECRET nor RETOUCH_WEBHOOK_SECRET is set, and each node has its
    own data dir: the database is all they share besides the bucket."""
    shared = {
        "database_url": postgres_url,
        "results_url": f"s3://secrets-{uuid.uuid4().hex[:8]}/results",
        "s3_endpoint_url": seaweed.endpoint_url,
    }
    try:
        with ExitStack() as stack:
            a, on_a = stack.enter_context(
                node(Settings(data_dir=tmp_path / "a", **shared), engines)
            )
            b, on_b = stack.enter_context(
                node(Settings(data_dir=tmp_path / "b", **shared), engines)
            )
            account = make_account(a, credits=5)
            made = on_a.post(
                "/v1/remove-background",
                headers=account.headers,
                files={"image": ("a.png", IMAGE)},
            )
            assert made.status_code == 200, made.text
            link = urlsplit(made.json()["result_url"])
            served = on_b.get(f"{link.path}?{link.query}")
            assert served.status_code == 200 and served.headers["content-type"] == "image/png"
            assert served.content == on_a.get(f"{link.path}?{link.query}").content

            assert a.webhook_master == b.webhook_master
            # The CLI, from a third data dir, prints the key both nodes sign this account with.
            printed = run_cli(
                "accounts", "webhook-secret", "acme", data_dir=str(tmp_path / "cli"), **shared
            )
            assert printed.returncode == 0, printed.stderr
            assert printed.stdout.strip() == account_key(b.webhook_master, account.id).decode()
        assert stored_names(postgres_url) == ["result_urls", "webhooks"]
        assert [path.name for path in tmp_path.rglob("*.key")] == []
    finally:
        empty_tables(postgres_url)


def test_settings_win_over_the_database(settings: Settings, database_url: str) -> None:
    configured = settings.model_copy(update={"result_secret": SecretStr("r" * 40)})
    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine).begin() as session:
            generated = load_server_secrets(settings, session)
            chosen = load_server_secrets(configured, session)
    finally:
        engine.dispose()
    assert chosen == dataclasses.replace(generated, result_urls=b"r" * 40)
    assert generated.result_urls != b"r" * 40 and len(generated.result_urls) == 32


def test_nodes_starting_together_agree_on_one_key(settings: Settings, database_url: str) -> None:
    nodes = 8
    start = threading.Barrier(nodes)

    def boot(_: int) -> ServerSecrets:
        engine = create_db_engine(database_url)  # a process of its own, as far as the DB sees
        try:
            start.wait()
            with create_session_factory(engine).begin() as session:
                return load_server_secrets(settings, session)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=nodes) as pool:
        loaded = set(pool.map(boot, range(nodes)))
    assert len(loaded) == 1
    assert stored_names(database_url) == ["result_urls", "webhooks"]


def test_a_key_file_from_before_the_database_kept_keys_is_adopted(
    settings: Settings, engines: Engines, tmp_path: Path
) -> None:
    """An upgrade keeps the result URLs already handed out valid, on every node."""
    old = UrlSigner(b"k" * 32)
    settings.data_dir.mkdir(parents=True)
    settings.secret_file.write_bytes(b"k" * 32)
    with node(settings, engines) as (services, http):
        expires_at = services.clock() + timedelta(hours=1)
        key = services.results.put(IMAGE, media_type="image/png", expires_at=expires_at)
        assert http.get(f"/v1/results/{key}?{old.sign(key, expires_at)}").content == IMAGE
    query = parse_qs(old.sign(key, expires_at))
    elsewhere = settings.model_copy(update={"data_dir": tmp_path / "elsewhere"})
    with node(elsewhere, engines) as (services, _):
        verified = services.signer.verify(
            key, query["expires"][0], query["signature"][0], now=services.clock()
        )
    assert verified

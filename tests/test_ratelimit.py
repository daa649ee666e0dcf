"""The limiter, one suite for every backend; and one limit shared by two server processes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from retouch.ratelimit import RateLimiter
from tests.utils.processes import run_cli, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    built = RateLimiter(url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield built
    await built.reset()
    await built.close()


@pytest.mark.anyio
async def test_moving_window_allows_the_limit_then_refuses(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit(1, 5) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert decisions[-1].reset_after == 1
    assert (await limiter.hit(2, 5)).allowed  # other accounts are counted apart


@pytest.mark.anyio
async def test_unreachable_redis_fails_open_or_closed_as_configured() -> None:
    for fail_open in (True, False):
        limiter = RateLimiter("redis://127.0.0.1:1/0", fail_open=fail_open)
        assert (await limiter.hit(1, 5)).allowed is fail_open
        await limiter.close()


def test_two_server_processes_share_one_redis_limit(tmp_path: Path, redis_url: str) -> None:
    data = str(tmp_path / "data")
    created = run_cli("accounts", "create", "acme", "--credits", "1", data_dir=data)
    key = next(w for w in created.stdout.split() if w.startswith("sk_"))
    shared = {"data_dir": data, "redis_url": redis_url, "redis_prefix": uuid.uuid4().hex}
    with (
        serve(tmp_path / "a.log", **shared) as node_a,
        serve(tmp_path / "b.log", **shared) as node_b,
        httpx.Client(headers={"X-API-KEY": key}) as http,
    ):
        statuses = [http.get(f"{node.url}/v1/credits").status_code for node in (node_a, node_b) * 4]
    assert statuses.count(200) == 5
    assert statuses[5:] == [429] * 3

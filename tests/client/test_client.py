"""retouch.client against a live Retouch server: every endpoint, typed errors, and retries that
never charge a call twice. Only the client's sleep is replaced (to record the waits); the
requests go over real HTTP."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.client import (
    AsyncRetouchClient,
    AuthenticationError,
    InsufficientCreditsError,
    InvalidRequestError,
    ParameterValidationError,
    Result,
    RetouchClient,
    RetouchConnectionError,
    ServerError,
    ShadowParameter,
)
from retouch.client._retry import RetryPolicy
from retouch.config import Settings
from retouch.db.models import LedgerEntry
from tests.utils.engines import MaskSegmenter
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import SIZE, composite, decode, encode, periodic_texture, product_mask
from tests.utils.processes import free_port
from tests.utils.server import LiveServer

PRODUCT = composite("flat")[0]  # 512x384 RGB with one clear subject
SMALL = periodic_texture(96, 96)  # quick to upscale
SQUARE = periodic_texture(128, 128)  # outpaint's minimum side


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder(httpx.BaseTransport):
    """A real HTTP transport that keeps each request and what came of it (a status, or the
    transport error's class name)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, int | str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError as exc:
            self.exchanges.append((request, type(exc).__name__))
            raise
        self.exchanges.append((request, response.status_code))
        return response

    def close(self) -> None:
        self.inner.close()

    @property
    def outcomes(self) -> list[int | str]:
        return [outcome for _, outcome in self.exchanges]

    @property
    def keys(self) -> list[str | None]:
        return [request.headers.get("Idempotency-Key") for request, _ in self.exchanges]


class AsyncRecorder(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[tuple[httpx.Request, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.exchanges.append((request, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Sleeps(list[float]):
    """Records each wait the client asks for, and really waits (the server's clock is real)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def ledger_rows(services: Services, account: TestAccount) -> list[tuple[str, int, str | None]]:
    """The account's charges and refunds (kind, amount, request id), oldest first."""
    with services.sessions() as session:
        rows = session.execute(
            sa.select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.request_id)
            .where(LedgerEntry.account_id == account.id, LedgerEntry.kind != "grant")
            .order_by(LedgerEntry.id)
        ).all()
    return [(kind, amount, request_id) for kind, amount, request_id in rows]


def spent(services: Services, account: TestAccount) -> int:
    return -sum(amount for _, amount, _ in ledger_rows(services, account))


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=50)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def retouch(
    server: LiveServer, account: TestAccount, recorder: Recorder
) -> Iterator[RetouchClient]:
    with RetouchClient(account.key, base_url=server.url, transport=recorder) as client:
        yield client


# --- every endpoint -------------------------------------------------------------------------


def test_credits(retouch: RetouchClient, recorder: Recorder) -> None:
    assert retouch.credits() == 50
    # Only POSTs need an Idempotency-Key; a GET is safe to repeat as it is.
    assert recorder.keys == [None]


def test_remove_background_from_a_path_bytes_and_a_pil_image(
    retouch: RetouchClient, tmp_path: Path
) -> None:
    path = tmp_path / "product.png"
    path.write_bytes(encode(PRODUCT))

    as_url = retouch.remove_background(path)
    assert as_url.data is None and as_url.url is not None
    fetched = httpx.get(as_url.url)
    assert fetched.headers["content-type"] == "image/png"
    assert decode(fetched.content).size == (SIZE[1], SIZE[0])
    assert (as_url.credits_charged, as_url.credits_remaining) == (1, 49)
    assert as_url.request_id

    as_bytes = retouch.remove_background(encode(PRODUCT, "JPEG"), as_="bytes")
    assert as_bytes.url is None and as_bytes.media_type == "image/png"
    assert decode(as_bytes.data or b"").size == (SIZE[1], SIZE[0])

    from_pil = retouch.remove_background(decode(encode(PRODUCT)), as_="bytes").to_image()
    assert from_pil.mode == "RGBA" and from_pil.size == (SIZE[1], SIZE[0])
    alpha = np.asarray(from_pil)[..., 3] > 127
    assert (alpha == product_mask()).mean() > 0.95
    assert retouch.credits() == 47


def test_remove_background_options_reach_the_server(retouch: RetouchClient) -> None:
    # Objects travel as JSON text in multipart; a shadow costs 3 credits more.
    shadow = ShadowParameter(enabled=True, opacity=0.8)
    result = retouch.remove_background(
        encode(PRODUCT), crop=True, margin="10px", shadow=shadow, as_="bytes"
    )
    assert result.credits_charged == 4
    cut = result.to_image()
    assert cut.width < SIZE[1] and cut.height < SIZE[0]
    assert np.asarray(cut)[:10, :10, 3].max() == 0  # the transparent margin


def test_upscale_outpaint_and_generate_background(retouch: RetouchClient) -> None:
    upscaled = retouch.upscale(encode(SMALL), scale=4, as_="bytes").to_image()
    assert upscaled.size == (384, 384) and upscaled.format == "JPEG"

    outpainted = retouch.outpaint(
        encode(SQUARE), right=32, bottom=16, output_format="png", as_="bytes"
    )
    assert outpainted.media_type == "image/png"
    assert outpainted.to_image().size == (160, 144)

    scene = retouch.generate_background(
        encode(PRODUCT), scene="wood", image_transform={"scale": 0.5}, seed=7, as_="bytes"
    )
    assert scene.media_type == "image/jpeg" and scene.to_image().size == (1024, 1024)
    assert retouch.credits() == 47


@pytest.mark.settings(fetch_allow_networks=["127.0.0.1/32"])
def test_an_image_url_is_sent_as_json(retouch: RetouchClient, recorder: Recorder) -> None:
    first = retouch.upscale(encode(SMALL))
    assert first.url is not None
    second = retouch.upscale(first.url, as_="bytes")
    assert second.to_image().size == (384, 384)
    request = recorder.exchanges[-1][0]
    assert request.headers["content-type"] == "application/json"
    assert request.read().startswith(b'{"image_url":')


# --- typed errors ---------------------------------------------------------------------------


def test_a_bad_key_is_an_authentication_error(server: LiveServer, account: TestAccount) -> None:
    with RetouchClient(account.key + "x", base_url=server.url) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.credits()
    error = caught.value
    assert (error.status, error.error_code) == (401, "invalid_auth_token")
    assert error.message == "API Token not found" and error.request_id


def test_no_credits_is_insufficient_credits(server: LiveServer, services: Services) -> None:
    broke = make_account(services, "broke", credits=0)
    with RetouchClient(broke.key, base_url=server.url) as client:
        with pytest.raises(InsufficientCreditsError) as caught:
            client.upscale(encode(SMALL))
    assert (caught.value.status, caught.value.error_code) == (403, "insufficient_api_credits")
    assert ledger_rows(services, broke) == []


@pytest.mark.parametrize(
    ("method", "kwargs", "raw"),
    [
        ("upscale", {"scale": 3}, {"scale": 3}),
        ("outpaint", {}, {}),
        ("outpaint", {"left": 2001}, {"left": 2001}),
        ("remove_background", {"margin": "60%"}, {"margin": "60%"}),
        ("remove_background", {"shadow": {"opacity": 0.3}}, {"shadow": {"opacity": 0.3}}),
        ("generate_background", {"scene": "beach"}, {"scene": "beach"}),
        (
            "generate_background",
            {"image_transform": {"x_center": 2}},
            {"image_transform": {"x_center": 2}},
        ),
    ],
)
def test_invalid_values_fail_before_sending_with_the_servers_message(
    retouch: RetouchClient,
    recorder: Recorder,
    client: httpx.Client,
    account: TestAccount,
    method: str,
    kwargs: dict[str, Any],
    raw: dict[str, Any],
) -> None:
    with pytest.raises(ParameterValidationError) as caught:
        getattr(retouch, method)("https://example.com/product.jpg", **kwargs)
    assert recorder.exchanges == []
    # The same values sent by hand get the server's 400, word for word.
    path = "/v1/" + method.replace("_", "-")
    body = {"image_url": "https://example.com/product.jpg", **raw}
    answer = client.post(path, headers=account.headers, json=body)
    assert answer.status_code == caught.value.status == 400
    assert answer.json() == {"error": caught.value.message, "error_code": caught.value.error_code}


def test_a_server_side_400_is_typed_and_not_retried(
    server: LiveServer, services: Services, account: TestAccount, recorder: Recorder
) -> None:
    sleeps = Sleeps()
    with RetouchClient(
        account.key, base_url=server.url, transport=recorder, sleep=sleeps
    ) as client:
        with pytest.raises(InvalidRequestError) as caught:
            client.remove_background(b"these bytes are not an image")
    assert (caught.value.status, caught.value.error_code) == (400, "malformed_image")
    assert caught.value.request_id
    assert recorder.outcomes == [400] and sleeps == []
    assert spent(services, account) == 0


# --- retries --------------------------------------------------------------------------------


def test_backoff_follows_pixelcuts_formula() -> None:
    most = RetryPolicy(uniform=lambda low, high: high)
    least = RetryPolicy(uniform=lambda low, high: low)
    assert [least.backoff(n) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert [most.backoff(n) for n in range(5)] == [0.5, 0.75, 1.25, 2.25, 4.25]
    assert most.backoff(5) == least.backoff(5) == 5.0  # capped


def test_rate_limited_calls_wait_for_retry_after_and_are_charged_once(
    server: LiveServer, services: Services, recorder: Recorder
) -> None:
    slow = make_account(services, "slow", credits=10, rate_limit=1)
    sleeps = Sleeps()
    with RetouchClient(slow.key, base_url=server.url, transport=recorder, sleep=sleeps) as client:
        results = [client.upscale(encode(SMALL), as_="bytes") for _ in range(3)]

    assert 429 in recorder.outcomes and recorder.outcomes.count(200) == 3
    # Each wait after a 429 is at least the Retry-After it carried.
    waits = iter(sleeps)
    for outcome in recorder.outcomes:
        if outcome == 429:
            assert next(waits) >= 1.0
    # One key per call, shared by that call's retries.
    keys = recorder.keys
    assert len(set(keys)) == 3 and None not in keys
    assert keys == sorted(keys, key=keys.index)  # each call's tries are contiguous
    # Each call charged once, under the request id of its successful try.
    assert ledger_rows(services, slow) == [("charge", -1, r.request_id) for r in results]


def test_a_500_is_retried_with_the_same_key_and_charged_once(
    server: LiveServer,
    services: Services,
    account: TestAccount,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commit = services.ledger.commit
    failures = iter([RuntimeError("the database went away mid-commit")])

    def flaky_commit(**kwargs: Any) -> Any:
        for failure in failures:
            raise failure
        return commit(**kwargs)

    monkeypatch.setattr(services.ledger, "commit", flaky_commit)
    sleeps = Sleeps()
    with RetouchClient(
        account.key, base_url=server.url, transport=recorder, sleep=sleeps
    ) as client:
        result = client.upscale(encode(SMALL), idempotency_key="order-17")
    assert recorder.outcomes == [500, 200] and len(sleeps) == 1
    assert recorder.keys == ["order-17", "order-17"]
    assert result.credits_charged == 1
    # The failed try was refunded; the retry is the one charge that stands.
    assert [kind for kind, _, _ in ledger_rows(services, account)] == ["charge", "refund", "charge"]
    assert spent(services, account) == 1


def test_persistent_5xx_gives_up_after_max_tries(
    server: LiveServer,
    services: Services,
    account: TestAccount,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("always")

    monkeypatch.setattr(services.ledger, "commit", broken)
    with RetouchClient(
        account.key, base_url=server.url, transport=recorder, max_tries=3, sleep=Sleeps()
    ) as client:
        with pytest.raises(ServerError) as caught:
            client.upscale(encode(SMALL))
    assert (caught.value.status, caught.value.error_code) == (500, "internal_error")
    assert caught.value.request_id
    assert recorder.outcomes == [500, 500, 500]
    assert spent(services, account) == 0


def test_a_timed_out_post_is_retried_without_a_second_charge(
    settings: Settings, engines: Engines, recorder: Recorder
) -> None:
    # The segmenter holds the first try past the client's read timeout. The retry, with the
    # same key, finds it still running (409, retried too); once it is let go, the next retry
    # gets its result replayed rather than running the work again.
    release = threading.Event()
    segmenter = MaskSegmenter(product_mask(), hold=release)
    services = Services.create(settings, engines=dataclasses.replace(engines, segmenter=segmenter))
    try:
        account = make_account(services, credits=5)
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if recorder.outcomes[-1] == 409:
                release.set()
            time.sleep(seconds)

        with (
            LiveServer.start(create_app(settings, services)) as live,
            RetouchClient(
                account.key,
                base_url=live.url,
                transport=recorder,
                timeout=httpx.Timeout(10, read=1),
                sleep=sleep,
            ) as client,
        ):
            result = client.remove_background(encode(PRODUCT), as_="bytes")
        assert result.to_image().mode == "RGBA"
        assert recorder.outcomes == ["ReadTimeout", 409, 200]
        assert sleeps[1] >= 1.0  # the 409's Retry-After
        assert len(set(recorder.keys)) == 1
        assert spent(services, account) == 1
    finally:
        services.close()


def test_an_unreachable_server_is_a_connection_error_after_backoff() -> None:
    sleeps: list[float] = []
    with RetouchClient(
        "sk_any", base_url=f"http://127.0.0.1:{free_port()}", max_tries=3, sleep=sleeps.append
    ) as client:
        with pytest.raises(RetouchConnectionError, match="after 3 tries"):
            client.credits()
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 0.75


# --- async ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_client_runs_the_same_calls(server: LiveServer, account: TestAccount) -> None:
    async with AsyncRetouchClient(account.key, base_url=server.url) as client:
        assert await client.credits() == 50
        cut = await client.remove_background(encode(PRODUCT), as_="bytes")
        assert cut.to_image().mode == "RGBA" and cut.credits_remaining == 49
        url = (await client.upscale(decode(encode(SMALL)))).url
        assert url is not None and httpx.get(url).status_code == 200
        assert await client.credits() == 48

    async with AsyncRetouchClient(account.key + "x", base_url=server.url) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.credits()
    assert caught.value.error_code == "invalid_auth_token"


@pytest.mark.anyio
async def test_async_concurrent_calls_over_the_rate_limit_all_succeed_once_charged(
    server: LiveServer, services: Services
) -> None:
    slow = make_account(services, "slow", credits=10, rate_limit=1)
    recorder = AsyncRecorder()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await anyio.sleep(seconds)

    results: list[Result] = []
    async with AsyncRetouchClient(
        slow.key, base_url=server.url, transport=recorder, sleep=sleep
    ) as client:

        async def call() -> None:
            results.append(await client.upscale(encode(SMALL)))

        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(call)

    statuses = [status for _, status in recorder.exchanges]
    assert statuses.count(200) == 3 and statuses.count(429) == len(sleeps) >= 2
    assert min(sleeps) >= 1.0  # every wait honoured the 429's Retry-After
    keys = {request.headers["Idempotency-Key"] for request, _ in recorder.exchanges}
    assert len(keys) == 3
    assert sorted(ledger_rows(services, slow)) == sorted(
        ("charge", -1, r.request_id) for r in results
    )

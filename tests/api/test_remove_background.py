"""POST /v1/remove-background over real HTTP, with the real model and with exact-mask doubles."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.billing import ledger
from retouch.config import Settings
from retouch.db.models import LedgerEntry, Reservation
from retouch.engines.base import Segmenter
from retouch.errors import ServiceUnavailable
from tests.utils.engines import MaskSegmenter
from tests.utils.factories import TestAccount, make_account
from tests.utils.hangup import sent_request
from tests.utils.images import BACKGROUNDS, SIZE, composite, decode, encode, iou, product_mask
from tests.utils.seaweed import Seaweed
from tests.utils.server import LiveServer

ENDPOINT = "/v1/remove-background"


@contextmanager
def app_with(
    settings: Settings, engines: Engines, segmenter: Segmenter
) -> Iterator[tuple[httpx.Client, Services]]:
    services = Services.create(settings, engines=dataclasses.replace(engines, segmenter=segmenter))
    try:
        with (
            LiveServer.start(create_app(settings, services)) as live,
            httpx.Client(base_url=live.url, timeout=60) as http,
        ):
            yield http, services
    finally:
        services.close()


def upload(pixels: np.ndarray, **fields: str) -> dict[str, object]:
    return {"files": {"image": ("product.png", encode(pixels), "image/png")}, "data": fields}


def balance(services: Services, account: TestAccount) -> int:
    with services.sessions() as session:
        assert ledger.balance(session, account_id=account.id) == ledger.ledger_sum(
            session, account_id=account.id
        )
        return ledger.balance(session, account_id=account.id)


@pytest.mark.slow
def test_real_model_cuts_out_known_subjects(client: httpx.Client, services: Services) -> None:
    account = make_account(services, credits=10)
    scores = []
    for name in BACKGROUNDS:
        image, mask = composite(name)
        response = client.post(
            ENDPOINT, headers={**account.headers, "Accept": "image/*"}, **upload(image)
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        result = decode(response.content)
        assert result.mode == "RGBA" and result.size == (SIZE[1], SIZE[0])
        rgba = np.asarray(result)
        scores.append(iou(rgba[..., 3] > 127, mask))
        # Foreground colours are kept where the subject is solid.
        solid = rgba[..., 3] == 255
        assert np.abs(rgba[solid][:, :3].astype(int) - image[solid].astype(int)).mean() < 2
    assert min(scores) >= 0.85, scores
    assert np.mean(scores) >= 0.9, scores
    assert balance(services, account) == 10 - len(BACKGROUNDS)


def test_json_result_url_serves_the_png_then_expires(
    client: httpx.Client, services: Services
) -> None:
    account = make_account(services)
    image, _ = composite("flat")
    response = client.post(ENDPOINT, headers=account.headers, **upload(image))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"result_url"}
    assert response.headers["X-Credits-Charged"] == "1"
    assert response.headers["X-Credits-Remaining"] == "9"

    url = response.json()["result_url"]
    assert url.startswith(client.base_url.join("/v1/results/").__str__())
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert decode(fetched.content).size == (SIZE[1], SIZE[0])
    # Tampering with the URL gets nothing.
    assert httpx.get(url.replace("expires=", "expires=9")).status_code == 404

    real_clock = services.clock
    services.clock = lambda: real_clock() + timedelta(seconds=3601)
    expired = httpx.get(url)
    assert expired.status_code == 404
    assert expired.json()["error_code"] == "not_found"


@pytest.mark.parametrize(
    ("accept", "image"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("image/*", True),
        ("image/png", True),
        ("image/png, application/json", False),
    ],
)
def test_accept_negotiation(
    client: httpx.Client, services: Services, accept: str | None, image: bool
) -> None:
    account = make_account(services)
    headers = account.headers | ({"Accept": accept} if accept else {})
    response = client.post(ENDPOINT, headers=headers, **upload(composite("flat")[0]))
    assert response.status_code == 200
    expected = "image/png" if image else "application/json"
    assert response.headers["content-type"] == expected


def test_only_results_fetched_later_are_kept(client: httpx.Client, services: Services) -> None:
    account = make_account(services)
    image = upload(composite("flat")[0])
    stored = services.settings.results_dir

    def kept() -> int:
        return len(list(stored.iterdir())) if stored.exists() else 0

    client.post(ENDPOINT, headers={**account.headers, "Accept": "image/png"}, **image)
    assert kept() == 0  # the image went out in the response; no copy stays on disk
    client.post(ENDPOINT, headers=account.headers, **image)
    assert kept() == 1  # a result_url points at it
    client.post(
        ENDPOINT,
        headers={**account.headers, "Accept": "image/png", "Idempotency-Key": "k1"},
        **image,
    )
    assert kept() == 2  # a replay will need it


# --- geometry, with the model replaced by the true mask so boxes are exact ------------------

MASK = product_mask()
YS, XS = np.nonzero(MASK)
BOX = (XS.min(), YS.min(), XS.max() + 1, YS.max() + 1)  # left, top, right, bottom
BOX_W, BOX_H = BOX[2] - BOX[0], BOX[3] - BOX[1]


@pytest.fixture
def exact(
    settings: Settings, engines: Engines
) -> Iterator[tuple[httpx.Client, Services, TestAccount]]:
    with app_with(settings, engines, MaskSegmenter(MASK)) as (http, services):
        yield http, services, make_account(services, credits=100)


def rgba_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(decode(response.content))


@pytest.mark.parametrize(
    ("fields", "margins"),
    [
        ({}, (0, 0, 0, 0)),
        ({"margin": "20px"}, (20, 20, 20, 20)),
        ({"margin": "10px", "margin_left": "0px", "margin_bottom": "35px"}, (0, 10, 10, 35)),
        # A percentage is of the subject box on that axis, each side on its own.
        ({"margin": "0%"}, (0, 0, 0, 0)),
        ({"margin": "10%"}, (round(BOX_W / 10), round(BOX_H / 10)) * 2),
        # 49% is the documented maximum: the result is 1.98 times the subject.
        ({"margin": "49%"}, (round(BOX_W * 0.49), round(BOX_H * 0.49)) * 2),
        (
            {"margin": "49%", "margin_top": "0px"},
            (round(BOX_W * 0.49), 0, round(BOX_W * 0.49), round(BOX_H * 0.49)),
        ),
        (
            {"margin": "10%", "margin_right": "25px"},
            (round(BOX_W / 10), round(BOX_H / 10), 25, round(BOX_H / 10)),
        ),
    ],
)
def test_crop_box_and_margins_are_exact(
    exact: tuple[httpx.Client, Services, TestAccount],
    fields: dict[str, str],
    margins: tuple[int, int, int, int],
) -> None:
    http, _, account = exact
    image, _ = composite("gradient")
    rgba = rgba_of(
        http.post(
            ENDPOINT,
            headers={**account.headers, "Accept": "image/png"},
            **upload(image, crop="true", **fields),
        )
    )
    left, top, right, bottom = margins
    assert rgba.shape[:2] == (BOX_H + top + bottom, BOX_W + left + right)
    opaque = np.nonzero(rgba[..., 3] > 127)
    assert (opaque[1].min(), opaque[0].min()) == (left, top)
    assert (opaque[1].max() + 1, opaque[0].max() + 1) == (left + BOX_W, top + BOX_H)
    # Crop without margins keeps the subject's pixels exactly.
    inner = rgba[top : top + BOX_H, left : left + BOX_W]
    source = image[BOX[1] : BOX[3], BOX[0] : BOX[2]]
    solid = MASK[BOX[1] : BOX[3], BOX[0] : BOX[2]]
    assert np.array_equal(inner[solid][:, :3], source[solid])


@pytest.mark.settings(image_max_side=600)
@pytest.mark.parametrize(
    ("fields", "margins"),
    [
        # Each axis is clamped on its own, its two margins shrunk in the ratio asked for.
        ({"margin": "100000px"}, ((600 - BOX_W) // 2, (600 - BOX_H) // 2) * 2),
        (
            {"margin": "49%", "margin_left": "10000px", "margin_right": "30000px"},
            ((600 - BOX_W) // 4, round(BOX_H * 0.49), (600 - BOX_W) * 3 // 4, round(BOX_H * 0.49)),
        ),
    ],
)
def test_margins_past_the_output_limit_are_clamped_to_it(
    exact: tuple[httpx.Client, Services, TestAccount],
    fields: dict[str, str],
    margins: tuple[int, int, int, int],
) -> None:
    http, services, account = exact
    response = http.post(
        ENDPOINT,
        headers={**account.headers, "Accept": "image/png"},
        **upload(composite("gradient")[0], crop="true", **fields),
    )
    rgba = rgba_of(response)
    left, top, right, bottom = margins
    assert rgba.shape[:2] == (BOX_H + top + bottom, BOX_W + left + right)
    assert max(rgba.shape[:2]) <= 600
    opaque = np.nonzero(rgba[..., 3] > 127)
    assert (opaque[1].min(), opaque[0].min()) == (left, top)
    assert response.headers["X-Credits-Charged"] == "1"


def test_margins_without_crop_change_nothing(
    exact: tuple[httpx.Client, Services, TestAccount],
) -> None:
    http, _, account = exact
    rgba = rgba_of(
        http.post(
            ENDPOINT,
            headers={**account.headers, "Accept": "image/*"},
            **upload(composite("flat")[0], margin="30px"),
        )
    )
    assert rgba.shape[:2] == SIZE


def test_shadow_darkens_the_side_away_from_the_light_and_costs_three_more(
    exact: tuple[httpx.Client, Services, TestAccount],
) -> None:
    http, services, account = exact
    image, _ = composite("flat")
    headers = {**account.headers, "Accept": "image/*"}

    plain = rgba_of(http.post(ENDPOINT, headers=headers, **upload(image)))
    before = balance(services, account)
    response = http.post(
        ENDPOINT,
        headers=headers,
        **upload(
            image,
            shadow='{"enabled": true, "opacity": 0.8, "light_source": '
            '{"size": 0.2, "position": {"x": -0.8, "y": -0.6, "z": 0.5}}}',
        ),
    )
    shadowed = rgba_of(response)
    assert response.headers["X-Credits-Charged"] == "4"
    assert balance(services, account) == before - 4

    added = (shadowed[..., 3].astype(int) - plain[..., 3].astype(int)).clip(0)
    outside = ~MASK
    centre = (BOX[0] + BOX[2]) // 2
    right_side = added[:, centre:][outside[:, centre:]].sum()
    left_side = added[:, :centre][outside[:, :centre]].sum()
    assert right_side > 2 * max(left_side, 1)
    assert np.all(shadowed[added > 0][:, :3] < 40)  # shadow pixels are dark
    # Cropping keeps the shadow in frame: the box grows to take it in.
    cropped = rgba_of(
        http.post(ENDPOINT, headers=headers, **upload(image, crop="true", shadow="true"))
    )
    subject_only = rgba_of(http.post(ENDPOINT, headers=headers, **upload(image, crop="true")))
    assert cropped.shape[0] * cropped.shape[1] > subject_only.shape[0] * subject_only.shape[1]
    assert ((cropped[..., 3] > 0) & (cropped[..., :3].max(axis=2) < 40)).sum() > 500
    # `shadow: true` is Pixelcut's shorthand for the defaults.
    shorthand = http.post(ENDPOINT, headers=headers, **upload(image, shadow="true"))
    assert shorthand.status_code == 200 and shorthand.headers["X-Credits-Charged"] == "4"


def test_rgba_input_alpha_is_respected(exact: tuple[httpx.Client, Services, TestAccount]) -> None:
    http, _, account = exact
    image, _ = composite("flat")
    rgba_in = np.dstack([image, np.full(SIZE, 255, np.uint8)])
    rgba_in[:, : SIZE[1] // 2, 3] = 0  # the left half was already transparent
    rgba = rgba_of(
        http.post(
            ENDPOINT,
            headers={**account.headers, "Accept": "image/*"},
            files={"image": ("in.png", encode(rgba_in), "image/png")},
        )
    )
    assert rgba[:, : SIZE[1] // 2, 3].max() == 0
    assert (rgba[:, SIZE[1] // 2 :, 3] > 127).sum() == MASK[:, SIZE[1] // 2 :].sum()


# --- billing and idempotency ------------------------------------------------------------


def test_idempotent_retry_replays_once_charged(
    exact: tuple[httpx.Client, Services, TestAccount],
) -> None:
    http, services, account = exact
    image, _ = composite("noise")
    headers = {**account.headers, "Idempotency-Key": "order-17-cutout"}

    first = http.post(ENDPOINT, headers=headers | {"Accept": "image/png"}, **upload(image))
    # The retry's multipart boundary differs; the request is still the same one.
    again = http.post(ENDPOINT, headers=headers | {"Accept": "image/png"}, **upload(image))
    as_json = http.post(ENDPOINT, headers=headers, **upload(image))

    assert first.status_code == again.status_code == as_json.status_code == 200
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert httpx.get(as_json.json()["result_url"]).content == first.content
    assert balance(services, account) == 99

    different = http.post(ENDPOINT, headers=headers, **upload(image, crop="true"))
    assert different.status_code == 422
    assert different.json()["error_code"] == "idempotency_key_reused"
    # Keys are per account: another account's identical key is its own request.
    other = make_account(services, "other", credits=5)
    response = http.post(
        ENDPOINT, headers={**other.headers, "Idempotency-Key": "order-17-cutout"}, **upload(image)
    )
    assert response.status_code == 200 and "Idempotent-Replayed" not in response.headers
    assert balance(services, account) == 99


def test_retry_while_the_first_is_running_gets_409(settings: Settings, engines: Engines) -> None:
    release = threading.Event()
    segmenter = MaskSegmenter(MASK, hold=release)
    with app_with(settings, engines, segmenter) as (http, services):
        account = make_account(services, credits=5)
        headers = {**account.headers, "Idempotency-Key": "slow-one"}
        body = upload(composite("flat")[0])
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(http.post, ENDPOINT, headers=headers, **body)
            assert segmenter.started.wait(10)
            second = http.post(ENDPOINT, headers=headers, **body)
            release.set()
            assert first.result().status_code == 200
        assert second.status_code == 409
        assert second.json()["error_code"] == "idempotency_key_in_use"
        assert balance(services, account) == 4


def test_a_bad_upload_is_refused_at_once_while_the_pool_is_busy(
    settings: Settings, engines: Engines
) -> None:
    release = threading.Event()
    segmenter = MaskSegmenter(MASK, hold=release)
    one_thread = settings.model_copy(update={"worker_threads": 1})
    with app_with(one_thread, engines, segmenter) as (http, services):
        account = make_account(services, credits=5)
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(
                http.post, ENDPOINT, headers=account.headers, **upload(composite("flat")[0])
            )
            assert segmenter.started.wait(10)
            # The only CPU thread is taken: a header check still answers without waiting.
            started = time.monotonic()
            junk = http.post(
                ENDPOINT, headers=account.headers, files={"image": ("a.png", b"not an image")}
            )
            answered = time.monotonic() - started
            release.set()
            assert busy.result().status_code == 200
        assert junk.json()["error_code"] == "malformed_image" and answered < 5
        assert balance(services, account) == 4


def test_a_full_work_queue_answers_429_and_charges_nothing(
    settings: Settings, engines: Engines
) -> None:
    release = threading.Event()
    segmenter = MaskSegmenter(MASK, hold=release)
    busy = settings.model_copy(update={"max_pending_tasks": 1})
    with app_with(busy, engines, segmenter) as (http, services):
        account = make_account(services, credits=5)
        body = upload(composite("flat")[0])
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(http.post, ENDPOINT, headers=account.headers, **body)
            assert segmenter.started.wait(10)
            refused = http.post(ENDPOINT, headers=account.headers, **body)
            release.set()
            assert first.result().status_code == 200
        assert refused.status_code == 429
        assert refused.json()["error_code"] == "rate_limit_exceeded"
        assert refused.headers["Retry-After"] == "1"
        assert balance(services, account) == 4
        with services.sessions() as session:
            statuses = session.scalars(sa.select(Reservation.status)).all()
        # The refused request's hold was refunded, not left hanging.
        assert sorted(statuses) == ["committed", "released"]


def test_a_failure_after_the_result_is_recorded_never_charges_twice(
    exact: tuple[httpx.Client, Services, TestAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, services, account = exact
    headers = {**account.headers, "Idempotency-Key": "fragile"}
    image = upload(composite("flat")[0])
    real_commit = services.ledger.commit
    calls = {"commit": 0}

    def commit_fails_once(**kwargs: object) -> object:
        calls["commit"] += 1
        if calls["commit"] == 1:
            raise RuntimeError("database went away mid-commit")
        return real_commit(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.ledger, "commit", commit_fails_once)
    assert http.post(ENDPOINT, headers=headers, **image).status_code == 500
    assert balance(services, account) == 100  # refunded
    retried = http.post(ENDPOINT, headers=headers, **image)
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert balance(services, account) == 99

    monkeypatch.setattr(
        "retouch.pipeline._balance", lambda *_: (_ for _ in ()).throw(RuntimeError("read failed"))
    )
    other = {**account.headers, "Idempotency-Key": "fragile-2"}
    assert http.post(ENDPOINT, headers=other, **image).status_code == 500
    monkeypatch.undo()
    replay = http.post(ENDPOINT, headers=other, **image)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert balance(services, account) == 98  # charged once for the second key


def in_s3(settings: Settings, seaweed: Seaweed, **overrides: str) -> Settings:
    """``settings`` with results in a fresh bucket of the test SeaweedFS."""
    return settings.model_copy(
        update={
            "results_url": f"s3://retouch-{uuid.uuid4().hex[:8]}/results",
            "s3_endpoint_url": seaweed.endpoint_url,
            **overrides,
        }
    )


@pytest.mark.usefixtures("aws_env")
def test_results_kept_in_s3_are_served_through_retouch(
    settings: Settings, engines: Engines, seaweed: Seaweed
) -> None:
    s3_settings = in_s3(settings, seaweed)
    with app_with(s3_settings, engines, MaskSegmenter(MASK)) as (http, services):
        account = make_account(services)
        response = http.post(ENDPOINT, headers=account.headers, **upload(composite("flat")[0]))
        assert response.status_code == 200, response.text
        url = response.json()["result_url"]
        fetched = httpx.get(url)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert decode(fetched.content).size == (SIZE[1], SIZE[0])
        assert not s3_settings.results_dir.exists()  # nothing went to local disk
        real_clock = services.clock
        services.clock = lambda: real_clock() + timedelta(seconds=3601)
        assert httpx.get(url).status_code == 404


@pytest.mark.usefixtures("aws_env")
def test_presigned_result_urls_download_from_the_bucket(
    settings: Settings, engines: Engines, seaweed: Seaweed
) -> None:
    presigned = in_s3(settings, seaweed, result_urls="presigned")
    with app_with(presigned, engines, MaskSegmenter(MASK)) as (http, services):
        account = make_account(services)
        response = http.post(ENDPOINT, headers=account.headers, **upload(composite("flat")[0]))
        assert response.status_code == 200, response.text
        url = urlsplit(response.json()["result_url"])
        # Straight to the bucket, signed by S3's own scheme for the result's hour.
        assert f"{url.scheme}://{url.netloc}" == seaweed.endpoint_url
        query = parse_qs(url.query)
        assert query["X-Amz-Expires"] == ["3600"] and "X-Amz-Signature" in query
        fetched = httpx.get(url.geturl())
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert decode(fetched.content).size == (SIZE[1], SIZE[0])
        forged = url._replace(query=url.query.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
        assert httpx.get(forged.geturl()).status_code == 403


def test_a_result_store_outage_is_a_503_and_charges_nothing(
    exact: tuple[httpx.Client, Services, TestAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, services, account = exact

    def storage_down(*_args: object, **_kwargs: object) -> str:
        raise ServiceUnavailable("result storage unavailable")

    monkeypatch.setattr(services.results, "put", storage_down)
    response = http.post(ENDPOINT, headers=account.headers, **upload(composite("flat")[0]))
    assert response.status_code == 503
    assert response.json()["error_code"] == "service_unavailable"
    assert balance(services, account) == 100


# --- long requests and clients that hang up ----------------------------------------------


class SlowSegmenter(MaskSegmenter):
    """Takes ``seconds`` per image, and counts the images it was given."""

    def __init__(self, mask: np.ndarray, *, seconds: float) -> None:
        super().__init__(mask)
        self.seconds = seconds
        self.calls = 0

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(self.seconds)
        return super().mask(rgb)


def ledger_kinds(services: Services, account: TestAccount) -> list[str]:
    with services.sessions() as session:
        return sorted(
            session.scalars(
                sa.select(LedgerEntry.kind).where(
                    LedgerEntry.account_id == account.id, LedgerEntry.kind != "grant"
                )
            )
        )


def test_a_request_outliving_the_reservation_ttl_keeps_its_reservation(
    settings: Settings, engines: Engines
) -> None:
    # One CPU thread and 3.5 s per image: the second request waits ~3.5 s for the CPU and ends
    # after ~7 s, past the 5 s TTL and with the sweeper running every second.
    segmenter = SlowSegmenter(MASK, seconds=3.5)
    short = settings.model_copy(
        update={"reservation_ttl_seconds": 5, "sweep_interval_seconds": 1, "worker_threads": 1}
    )
    with app_with(short, engines, segmenter) as (http, services):
        account = make_account(services, credits=100)
        body = upload(composite("flat")[0])
        with ThreadPoolExecutor(2) as pool:
            answers = [
                pool.submit(http.post, ENDPOINT, headers=account.headers, **body) for _ in range(2)
            ]
            responses = [answer.result() for answer in answers]
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert [r.headers["X-Credits-Charged"] for r in responses] == ["1", "1"]
        assert balance(services, account) == 98
        # Charged once each, never refunded by the sweeper meanwhile.
        assert ledger_kinds(services, account) == ["charge", "charge"]
        with services.sessions() as session:
            assert session.scalars(sa.select(Reservation.status)).all() == [
                "committed",
                "committed",
            ]


def test_a_client_gone_while_queued_is_refunded_and_its_work_skipped(
    settings: Settings, engines: Engines
) -> None:
    release = threading.Event()
    segmenter = MaskSegmenter(MASK, hold=release)
    one_thread = settings.model_copy(update={"worker_threads": 1})
    with app_with(one_thread, engines, segmenter) as (http, services):
        account = make_account(services, credits=100)
        body = upload(composite("flat")[0])
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(http.post, ENDPOINT, headers=account.headers, **body)
            assert segmenter.started.wait(10)
            with sent_request(
                f"{http.base_url}{ENDPOINT}", headers=account.headers, **body
            ) as hang_up:
                # Reserved and queued behind the running image: then the client gives up.
                deadline = time.monotonic() + 10
                while services.executor.pending < 2 or balance(services, account) > 98:
                    assert time.monotonic() < deadline, "the second request never queued"
                    time.sleep(0.02)
                hang_up()
                while balance(services, account) != 99:
                    assert time.monotonic() < deadline, "the queued request was not refunded"
                    time.sleep(0.02)
            segmenter.started.clear()
            release.set()
            assert running.result().status_code == 200
        time.sleep(0.5)
        # The dropped image never reached the model, and the pool's count is back to zero.
        assert not segmenter.started.is_set()
        assert services.executor.pending == 0
        assert balance(services, account) == 99
        assert ledger_kinds(services, account) == ["charge", "charge", "refund"]


def test_a_client_gone_while_its_image_runs_is_charged_and_can_replay_it(
    settings: Settings, engines: Engines
) -> None:
    release = threading.Event()
    segmenter = MaskSegmenter(MASK, hold=release)
    with app_with(settings, engines, segmenter) as (http, services):
        account = make_account(services, credits=100)
        headers = {**account.headers, "Idempotency-Key": "hung-up"}
        body = upload(composite("flat")[0])
        with sent_request(f"{http.base_url}{ENDPOINT}", headers=headers, **body) as hang_up:
            assert segmenter.started.wait(10)
            hang_up()
        release.set()
        deadline = time.monotonic() + 10
        while (replay := http.post(ENDPOINT, headers=headers, **body)).status_code == 409:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
        assert balance(services, account) == 99


@pytest.mark.slow
@pytest.mark.settings(stage_timings=True)
def test_stage_timings_are_logged_per_request(
    client: httpx.Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    account = make_account(services, credits=2)
    image, _ = composite("gradient")
    with caplog.at_level(logging.INFO, logger="retouch.processing"):
        response = client.post(
            ENDPOINT, headers={**account.headers, "Accept": "image/*"}, **upload(image)
        )
    assert response.status_code == 200, response.text
    (record,) = [r for r in caplog.records if r.getMessage() == "remove-background stages"]
    stages = record.__dict__["stages"]
    assert list(stages) == ["decode", "model_input", "model", "refine", "cutout", "encode"]
    assert all(s["wall_ms"] >= 0 and s["cpu_ms"] >= 0 for s in stages.values())
    assert stages["model"]["threads"] == services.settings.cpu_threads


@pytest.mark.slow
def test_stage_timings_are_off_by_default(
    client: httpx.Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    account = make_account(services, credits=2)
    image, _ = composite("gradient")
    with caplog.at_level(logging.INFO, logger="retouch.processing"):
        response = client.post(
            ENDPOINT, headers={**account.headers, "Accept": "image/*"}, **upload(image)
        )
    assert response.status_code == 200, response.text
    assert "remove-background stages" not in caplog.text

"""``Accept`` on the image endpoints (q-values, exact types, 406 charging nothing) and HEAD on a
result URL, over real HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from retouch.app_state import Services
from retouch.billing import ledger
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, decode, encode

PRODUCT = encode(composite("flat")[0])
SMALL = encode(np.full((64, 80, 3), 120, np.uint8))
SMALL_ALPHA = encode(
    np.dstack([np.full((64, 80, 3), 120, np.uint8), np.full((64, 80), 200, np.uint8)])
)
CREDITS = 50


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=CREDITS)


def balance(services: Services, account: TestAccount) -> int:
    with services.sessions() as session:
        return ledger.balance(session, account_id=account.id)


def post(
    client: httpx.Client, account: TestAccount, path: str, accept: str, image: bytes, **data: str
) -> httpx.Response:
    return client.post(
        path,
        headers={**account.headers, "Accept": accept},
        files={"image": ("in.png", image, "image/png")},
        data=data,
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/png;q=0.9, application/json;q=0.5", "image/png"),
        ("image/png;q=0.5, application/json;q=0.9", "application/json"),
        ("application/json;q=0.1, image/*", "image/png"),
        ("IMAGE/PNG", "image/png"),
        ("text/html, */*;q=0.1", "application/json"),
        # The most specific range decides: PNG is refused, so JSON it is.
        ("image/*, image/png;q=0, application/json;q=0.2", "application/json"),
        ("", "application/json"),
    ],
)
def test_q_values_and_specificity_choose_the_answer(
    client: httpx.Client, services: Services, account: TestAccount, accept: str, expected: str
) -> None:
    response = post(client, account, "/v1/remove-background", accept, PRODUCT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == expected
    if expected == "image/png":
        assert decode(response.content).format == "PNG"


@pytest.mark.parametrize(
    ("path", "accept", "image", "data"),
    [
        # remove-background makes PNG only.
        ("/v1/remove-background", "image/jpeg", PRODUCT, {}),
        ("/v1/remove-background", "image/*, image/png;q=0", PRODUCT, {}),
        ("/v1/remove-background", "text/html", PRODUCT, {}),
        ("/v1/remove-background", "application/json;q=0, image/webp", PRODUCT, {}),
        ("/v1/generate-background", "image/png", PRODUCT, {"scene": "wood"}),
        ("/v1/outpaint", "image/png", SMALL, {"left": "8"}),  # output_format is jpeg
        ("/v1/outpaint", "image/jpeg", SMALL, {"left": "8", "output_format": "png"}),
    ],
)
def test_a_type_the_endpoint_cannot_make_is_406_before_any_charge(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    path: str,
    accept: str,
    image: bytes,
    data: dict[str, str],
) -> None:
    response = post(client, account, path, accept, image, **data)
    assert response.status_code == 406, response.text
    assert response.json()["error_code"] == "not_acceptable"
    assert set(response.json()) == {"error", "error_code"}
    assert balance(services, account) == CREDITS


def test_upscale_answers_what_accept_allows_or_406_uncharged(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    # Upscale makes JPEG, or PNG when the input has alpha: the type is known only afterwards.
    jpeg = post(client, account, "/v1/upscale", "image/jpeg", SMALL)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    png = post(client, account, "/v1/upscale", "image/png", SMALL_ALPHA)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert balance(services, account) == CREDITS - 2
    refused = post(client, account, "/v1/upscale", "image/png", SMALL)
    assert refused.status_code == 406, refused.text
    assert refused.json()["error_code"] == "not_acceptable"
    assert balance(services, account) == CREDITS - 2


def test_a_malformed_accept_header_is_a_400(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    response = post(client, account, "/v1/remove-background", "png", PRODUCT)
    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_parameter"
    assert "Accept" in response.json()["error"]
    assert balance(services, account) == CREDITS


def test_head_on_a_result_url_gives_the_headers_without_the_body(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    made = post(client, account, "/v1/remove-background", "application/json", PRODUCT)
    url = made.json()["result_url"]
    got = httpx.get(url)
    head = httpx.head(url)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"] == "image/png"
    assert int(head.headers["content-length"]) == len(got.content) > 0
    assert head.headers["cache-control"] == got.headers["cache-control"]
    # An unknown or tampered URL is the same 404 as for GET.
    tampered = httpx.head(url.replace("signature=", "signature=0"))
    assert tampered.status_code == 404

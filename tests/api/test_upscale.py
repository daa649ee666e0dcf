"""POST /v1/upscale over real HTTP, with the SPAN network."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from retouch.app_state import Services
from tests.utils.calls import post_image
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, decode, encode, periodic_texture


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=20)


def post(client: httpx.Client, account: TestAccount, data: bytes, **fields: str) -> httpx.Response:
    return post_image(client, "/v1/upscale", account, data, **fields)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 4])
def test_rgb_becomes_a_jpeg_scale_times_larger(
    client: httpx.Client, account: TestAccount, scale: int
) -> None:
    image = periodic_texture(96, 80)
    response = post(client, account, encode(image), scale=str(scale))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    result = decode(response.content)
    assert result.format == "JPEG" and result.size == (80 * scale, 96 * scale)
    # Still the same picture: shrunk back, it matches the input closely.
    small = np.asarray(result.resize((80, 96)))
    assert np.abs(small.astype(int) - image.astype(int)).mean() < 8


@pytest.mark.slow
def test_alpha_is_upscaled_into_a_png(client: httpx.Client, account: TestAccount) -> None:
    photo, mask = composite("flat")
    rgba = np.dstack([photo, np.where(mask, 255, 0).astype(np.uint8)])[::4, ::4]  # 96x128
    response = post(client, account, encode(rgba))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    result = np.asarray(decode(response.content))
    assert result.shape == (192, 256, 4)
    big_mask = mask[::2, ::2]
    agreement = ((result[..., 3] > 127) == big_mask).mean()
    assert agreement > 0.98


@pytest.mark.parametrize(
    ("side", "scale"),
    [(3001, "2"), (1501, "4")],
)
def test_results_over_6000_px_are_refused_with_the_largest_input(
    client: httpx.Client, account: TestAccount, side: int, scale: str
) -> None:
    # Mostly-flat images: small files, but over the size the scale allows.
    image = np.full((64, side, 3), 200, np.uint8)
    response = post(client, account, encode(image), scale=scale)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "resolution_too_high"
    assert f"up to {6000 // int(scale)} px" in body["error"]
    assert client.get("/v1/credits", headers=account.headers).json() == {"credits_remaining": "20"}


@pytest.mark.parametrize("scale", ["3", "1", "8", "two", "2.5"])
def test_scale_must_be_2_or_4(client: httpx.Client, account: TestAccount, scale: str) -> None:
    response = post(client, account, encode(periodic_texture(96, 96)), scale=scale)
    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_parameter"
    assert "scale" in response.json()["error"]

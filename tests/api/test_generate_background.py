"""POST /v1/generate-background over real HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from retouch.app_state import Services
from retouch.engines.scenes import SCENES
from tests.utils.calls import post_image
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, decode, encode

ENDPOINT = "/v1/generate-background"
RED = (220, 30, 30)


def red_square(side: int = 200, canvas: int = 300) -> np.ndarray:
    """RGBA: a solid red square centred on a transparent canvas."""
    rgba = np.zeros((canvas, canvas, 4), np.uint8)
    start = (canvas - side) // 2
    rgba[start : start + side, start : start + side] = (*RED, 255)
    return rgba


def red_pixels(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=50)


def post(
    client: httpx.Client, account: TestAccount, image: np.ndarray, **fields: str
) -> httpx.Response:
    return post_image(client, ENDPOINT, account, encode(image), **fields)


def test_jpeg_1024_with_the_subject_where_image_transform_says(
    client: httpx.Client, account: TestAccount
) -> None:
    response = post(
        client,
        account,
        red_square(),
        image_transform='{"scale": 0.25, "x_center": 0.25, "y_center": 0.75}',
        scene="wood",
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = decode(response.content)
    assert image.format == "JPEG" and image.size == (1024, 1024)
    red = red_pixels(np.asarray(image))
    ys, xs = np.nonzero(red)
    # The canvas holds the whole 300 px RGBA image scaled to 256 px: the square is 2/3 of it.
    assert abs(xs.mean() - 256) <= 3 and abs(ys.mean() - 768) <= 3
    assert abs((xs.max() - xs.min() + 1) - 256 * 2 / 3) <= 4
    assert red[:, 512:].sum() == 0  # nothing red on the right half


def test_rgba_alpha_is_respected_and_rgb_is_cut_out(
    client: httpx.Client, account: TestAccount
) -> None:
    # RGBA: the transparent area is not part of the subject, whatever its colour underneath.
    rgba = red_square()
    rgba[:50, :, :3] = (30, 220, 30)  # green, but fully transparent
    kept = np.asarray(decode(post(client, account, rgba, scene="marble").content))
    assert ((kept[..., 1] > 180) & (kept[..., 0] < 80)).sum() == 0
    # RGB: the background is removed first, the subject trimmed and placed at 60% of the canvas.
    photo, mask = composite("flat")
    placed = np.asarray(decode(post(client, account, photo, scene="marble").content))
    blue = (placed[..., 2] > 150) & (placed[..., 0] < 90)
    ys, xs = np.nonzero(blue)
    mask_h = np.nonzero(mask.any(axis=1))[0]
    assert abs((ys.max() - ys.min() + 1) - 0.6 * 1024) <= 0.06 * 1024
    assert len(mask_h) > 0 and abs(xs.mean() - 512) < 40


def test_every_scene_differs_and_a_request_is_reproducible(
    client: httpx.Client, account: TestAccount
) -> None:
    subject = red_square(100)
    images = {}
    for scene in SCENES:
        response = post(client, account, subject, scene=scene)
        assert response.status_code == 200
        images[scene] = np.asarray(decode(response.content)).astype(np.int16)
    for i, a in enumerate(SCENES):
        for b in SCENES[i + 1 :]:
            # Two light scenes (marble, counter) share a palette; they differ in structure, so
            # count the pixels that differ visibly rather than the mean difference alone.
            difference = np.abs(images[a] - images[b]).max(axis=2)
            assert difference.mean() > 8 and (difference > 16).mean() > 0.1, (a, b)
    again = np.asarray(decode(post(client, account, subject, scene="brick").content))
    assert np.abs(again.astype(np.int16) - images["brick"]).max() <= 2
    other_seed = np.asarray(decode(post(client, account, subject, scene="brick", seed="7").content))
    assert np.abs(other_seed.astype(np.int16) - images["brick"]).mean() > 1


def test_prompt_keywords_choose_the_scene(client: httpx.Client, account: TestAccount) -> None:
    subject = red_square(100)
    by_scene = np.asarray(decode(post(client, account, subject, scene="brick", seed="3").content))
    by_prompt = np.asarray(
        decode(post(client, account, subject, prompt="on an old brick wall", seed="3").content)
    )
    assert np.abs(by_prompt.astype(np.int16) - by_scene).max() <= 2
    # `scene` overrides the prompts.
    overridden = np.asarray(
        decode(post(client, account, subject, scene="brick", prompt="marble", seed="3").content)
    )
    assert np.abs(overridden.astype(np.int16) - by_scene).max() <= 2


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"scene": "moon"}, "invalid_parameter"),
        ({"image_transform": '{"x_center": 1.5}'}, "invalid_parameter"),
        ({"image_transform": '{"scale": 0}'}, "invalid_parameter"),
        ({"prompt": "x" * 1001}, "invalid_parameter"),
    ],
)
def test_parameter_errors(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    fields: dict[str, str],
    code: str,
) -> None:
    response = post(client, account, red_square(), **fields)
    assert response.status_code == 400 and response.json()["error_code"] == code
    assert client.get("/v1/credits", headers=account.headers).json() == {"credits_remaining": "50"}


def test_a_fully_transparent_image_has_no_subject(
    client: httpx.Client, account: TestAccount
) -> None:
    empty = np.zeros((100, 100, 4), np.uint8)
    response = post(client, account, empty)
    assert response.status_code == 400
    assert response.json()["error_code"] == "unknown_foreground"


# --- free-text prompts: the scene nearest in meaning, named in X-Retouch-Scene -------------


def test_a_free_text_prompt_gets_its_scene_and_the_header_names_it(
    client: httpx.Client, account: TestAccount
) -> None:
    # The example: this returned the grey studio sweep.
    prompt = "a sunny beach with blue sky and golden sand"
    response = post(client, account, red_square(100), prompt=prompt, seed="4")
    assert response.status_code == 200, response.text
    assert response.headers["X-Retouch-Scene"] == "beach"
    image = np.asarray(decode(response.content)).astype(np.float64)
    r, g, b = image[:150].reshape(-1, 3).mean(axis=0)
    assert b > r + 40 and b > g  # blue sky at the top
    r, g, b = image[-150:].reshape(-1, 3).mean(axis=0)
    assert r > g > b + 30 and r > 150  # golden sand at the bottom
    again = post(client, account, red_square(100), prompt=prompt, seed="4")
    assert again.content == response.content  # the same request, the same image


@pytest.mark.parametrize(
    ("fields", "scene"),
    [
        ({"prompt": "snowy mountains in winter"}, "snow"),
        ({"prompt": "on a table in a cosy cafe"}, "cafe"),
        ({"prompt": "on a round podium", "negative_prompt": "pedestal, cylinder"}, "studio"),
        ({"prompt": "a beach or a snowy field", "negative_prompt": "beach, sand"}, "snow"),
        ({"scene": "linen", "prompt": "a sunny beach"}, "linen"),  # `scene` wins
        ({}, "studio"),
    ],
)
def test_the_header_names_the_scene_for_json_responses_too(
    client: httpx.Client, account: TestAccount, fields: dict[str, str], scene: str
) -> None:
    response = client.post(
        ENDPOINT,
        headers=account.headers,
        files={"image": ("in.png", encode(red_square(100)))},
        data=fields,
    )
    assert response.status_code == 200, response.text
    assert "result_url" in response.json()
    assert response.headers["X-Retouch-Scene"] == scene


def test_a_colour_word_colours_a_studio_backdrop(
    client: httpx.Client, account: TestAccount
) -> None:
    pink = post(client, account, red_square(100), prompt="a plain pink backdrop", seed="1")
    assert pink.headers["X-Retouch-Scene"] == "studio"
    r, _, b = np.asarray(decode(pink.content))[:200].reshape(-1, 3).mean(axis=0)
    assert r > b + 25


def test_an_idempotent_replay_names_the_scene_too(
    client: httpx.Client, account: TestAccount
) -> None:
    def send() -> httpx.Response:
        return client.post(
            ENDPOINT,
            headers={**account.headers, "Accept": "image/*", "Idempotency-Key": "scene-1"},
            files={"image": ("in.png", encode(red_square(100)))},
            data={"prompt": "in a forest"},
        )

    first, replay = send(), send()
    assert first.status_code == replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert first.headers["X-Retouch-Scene"] == replay.headers["X-Retouch-Scene"] == "forest"
    assert replay.content == first.content


def test_the_openapi_document_names_the_scene_header(client: httpx.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"][ENDPOINT]["post"]
    headers = operation["responses"]["200"]["headers"]
    assert "X-Retouch-Scene" in headers and "X-Credits-Charged" in headers

"""POST /v1/outpaint over real HTTP, with the PatchMatch engine."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from skimage import data

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.config import Settings
from retouch.db import migrate
from retouch.engines.diffusion import DiffusionInpainter
from tests.utils.calls import post_image
from tests.utils.clones import CHELSEA_FEATURES, CHELSEA_SIDES, chelsea_border, clone_score
from tests.utils.diffusion import build_tiny_pipeline
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import decode, encode, periodic_texture
from tests.utils.server import LiveServer

ENDPOINT = "/v1/outpaint"


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=20)


def post(
    client: httpx.Client, account: TestAccount, image: np.ndarray, **fields: str
) -> httpx.Response:
    return post_image(client, ENDPOINT, account, encode(image), **fields)


@pytest.mark.slow
def test_a_periodic_texture_is_continued_and_the_original_kept(
    client: httpx.Client, account: TestAccount
) -> None:
    truth = periodic_texture(240, 280)
    inner = truth[40:200, 40:240]  # 160x200, extended back by 40 px on each side
    response = post(
        client, account, inner, left="40", top="40", right="40", bottom="40", output_format="png"
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    result = np.asarray(decode(response.content))
    assert result.shape == truth.shape
    assert np.array_equal(result[40:200, 40:240], inner)
    border = np.ones(truth.shape[:2], bool)
    border[40:200, 40:240] = False
    error = np.abs(result.astype(int) - truth.astype(int))[border].mean()
    flat = np.abs(truth.astype(int) - inner.reshape(-1, 3).mean(axis=0))[border].mean()
    assert error < 12 and error < flat / 3, (error, flat)


@pytest.mark.slow
def test_a_real_photo_is_grown_without_copies_of_its_subject(
    client: httpx.Client, account: TestAccount
) -> None:
    """Issue 14: skimage's cat grown by 200 px left and right and 100 px on top came back with
    copies of its eyes in the border; the service now keeps the subject out of the fill."""
    image = data.chelsea()
    sides = {side: str(px) for side, px in CHELSEA_SIDES.items() if px}
    # A full-size fill: seconds alone, more on a busy test machine than the client's default.
    response = client.post(
        ENDPOINT,
        headers={**account.headers, "Accept": "image/*"},
        files={"image": ("chelsea.png", encode(image))},
        data={**sides, "output_format": "png"},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    result = np.asarray(decode(response.content).convert("RGB"))
    border = chelsea_border(image)
    assert result.shape == (*border.shape, 3)
    assert np.array_equal(result[~border].reshape(image.shape), image)
    scores = {name: clone_score(result, border, patch) for name, patch in CHELSEA_FEATURES.items()}
    assert max(scores.values()) < 0.6, scores


def test_jpeg_by_default_with_the_requested_size(
    client: httpx.Client, account: TestAccount
) -> None:
    image = periodic_texture(150, 130)
    response = post(client, account, image, right="50", bottom="10", creativity="0.5")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    result = decode(response.content)
    assert result.format == "JPEG" and result.size == (130 + 50, 150 + 10)
    assert response.headers["X-Credits-Charged"] == "1"


@pytest.mark.parametrize(
    ("fields", "size", "code"),
    [
        ({}, 150, "invalid_parameter"),
        ({"left": "0", "right": "0"}, 150, "invalid_parameter"),
        ({"left": "2001"}, 150, "invalid_parameter"),
        ({"left": "-1"}, 150, "invalid_parameter"),
        ({"left": "10", "creativity": "1.5"}, 150, "invalid_parameter"),
        ({"left": "10", "output_format": "gif"}, 150, "invalid_parameter"),
        ({"left": "ten"}, 150, "invalid_parameter"),
        ({"left": "10"}, 127, "invalid_parameter"),  # outpaint needs 128 px on a side
    ],
)
def test_parameter_errors_charge_nothing(
    client: httpx.Client, account: TestAccount, fields: dict[str, str], size: int, code: str
) -> None:
    response = post(client, account, periodic_texture(size, 200), **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == code
    assert client.get("/v1/credits", headers=account.headers).json() == {"credits_remaining": "20"}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-inpainting")
    build_tiny_pipeline(folder)
    return folder


@pytest.mark.slow
def test_the_diffusion_engine_is_selected_by_configuration(
    tmp_path: Path, tiny_weights: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        filler="diffusion",
        background_generator="diffusion",
        diffusion_weights=tiny_weights,
        diffusion_steps=2,
    )
    migrate.upgrade(settings.sqlalchemy_url)
    engines = Engines.load(settings)
    assert isinstance(engines.filler, DiffusionInpainter)
    assert engines.backgrounds is engines.filler  # one pipeline in memory for both
    services = Services.create(settings, engines=engines)
    try:
        with (
            LiveServer.start(create_app(settings, services)) as live,
            httpx.Client(base_url=live.url, timeout=60) as http,
        ):
            account = make_account(services)
            image = periodic_texture(128, 128)
            response = http.post(
                ENDPOINT,
                headers={**account.headers, "Accept": "image/png"},
                files={"image": ("in.png", encode(image))},
                data={"left": "16", "bottom": "8", "output_format": "png"},
            )
            assert response.status_code == 200, response.text
            result = np.asarray(decode(response.content))
            assert result.shape == (136, 144, 3)
            assert np.array_equal(result[:128, 16:], image)
    finally:
        services.close()


def test_diffusion_without_weights_is_a_clear_startup_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights"):
        Engines.load(Settings(data_dir=tmp_path, filler="diffusion"))

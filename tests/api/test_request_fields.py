"""How request fields are read, over real HTTP: JSON ``null`` is "not given" on every endpoint,
multipart nested fields in the bracket and dotted forms that form libraries send, boolean
spellings of ``shadow``, and unknown or doubled fields refused with a 400 naming them (charging
nothing) rather than ignored."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from retouch.app_state import Services
from retouch.billing import ledger
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, decode, encode
from tests.utils.people import small_portrait

PRODUCT = encode(composite("flat")[0])
PERSON = encode(small_portrait())  # the pose model must find a person at submission
_GARMENT = np.zeros((80, 80, 4), np.uint8)
_GARMENT[10:70, 10:70] = (200, 20, 20, 255)  # has transparency: no extraction needed
GARMENT = encode(_GARMENT)
URL = "https://images.example/product.png"
IMAGES = {URL: PRODUCT, "https://images.example/person.png": PERSON}
IMAGES["https://images.example/garment.png"] = GARMENT
CREDITS = 100


@pytest.fixture(autouse=True)
def images_from_memory(monkeypatch: pytest.MonkeyPatch, offline: None) -> None:
    """``image_url`` fields are answered from memory: nothing leaves the machine."""

    async def from_memory(url: str, **_kwargs: object) -> bytes:
        return IMAGES[url]

    monkeypatch.setattr("retouch.api.inputs.fetch_url", from_memory)


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=CREDITS)


def balance(services: Services, account: TestAccount) -> int:
    with services.sessions() as session:
        return ledger.balance(session, account_id=account.id)


def image_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(decode(response.content))


# --- null -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "nulls", "given"),
    [
        (
            "/v1/remove-background",
            {
                "format": None,
                "shadow": None,
                "crop": None,
                "margin": None,
                "margin_left": None,
                "margin_right": None,
                "margin_top": None,
                "margin_bottom": None,
            },
            {},
        ),
        # Inside an object too: the shadow keeps its default opacity and light.
        (
            "/v1/remove-background",
            {"shadow": {"enabled": True, "opacity": None, "light_source": None}},
            {"shadow": {"enabled": True}},
        ),
        ("/v1/upscale", {"scale": None}, {}),
        (
            "/v1/outpaint",
            {"left": None, "top": None, "bottom": None, "creativity": None, "output_format": None},
            {"right": 32},
        ),
        (
            "/v1/generate-background",
            {
                "image_transform": None,
                "scene": None,
                "prompt": None,
                "negative_prompt": None,
                "seed": None,
            },
            {},
        ),
        (
            "/v1/generate-background",
            {"image_transform": {"scale": None, "x_center": None, "y_center": 0.4}},
            {"image_transform": {"y_center": 0.4}},
        ),
    ],
)
def test_null_is_the_same_as_leaving_the_field_out(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    path: str,
    nulls: dict[str, object],
    given: dict[str, object],
) -> None:
    headers = {**account.headers, "Accept": "image/*"}
    with_nulls = client.post(path, headers=headers, json={"image_url": URL, **given, **nulls})
    without = client.post(path, headers=headers, json={"image_url": URL, **given})
    assert with_nulls.status_code == without.status_code == 200, with_nulls.text
    assert with_nulls.content == without.content
    assert with_nulls.headers["X-Credits-Charged"] == without.headers["X-Credits-Charged"]
    if path == "/v1/outpaint":
        assert image_of(with_nulls).shape[:2] == (384, 512 + 32)  # only the side given
    if path == "/v1/upscale":
        assert image_of(with_nulls).shape[:2] == (768, 1024)  # scale's default, 2


def test_null_on_try_on_fields_is_not_given(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    response = client.post(
        "/v1/try-on",
        headers=account.headers,
        json={
            "person_image_url": "https://images.example/person.png",
            "garment_image_url": "https://images.example/garment.png",
            "garment_mode": None,
            "preprocess_garment": None,
            "remove_background": None,
            "webhook_url": None,
            "wait_for_result": False,
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["job_id"]


def test_null_for_a_required_field_is_missing(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    response = client.post(
        "/v1/remove-background",
        headers=account.headers,
        json={"image_url": URL, "shadow": {"enabled": None}},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "shadow.enabled is required",
        "error_code": "missing_parameter",
    }
    assert balance(services, account) == CREDITS


# --- multipart nested fields ------------------------------------------------------------------


def cut(client: httpx.Client, account: TestAccount, **fields: str) -> httpx.Response:
    return client.post(
        "/v1/remove-background",
        headers={**account.headers, "Accept": "image/png"},
        files={"image": ("product.png", PRODUCT, "image/png")},
        data=fields,
    )


SHADOW_JSON = '{"enabled": true, "opacity": 0.9, "light_source": {"position": {"x": 0.8}}}'


@pytest.mark.parametrize(
    "fields",
    [
        {
            "shadow[enabled]": "true",
            "shadow[opacity]": "0.9",
            "shadow[light_source][position][x]": "0.8",
        },
        {
            "shadow.enabled": "true",
            "shadow.opacity": "0.9",
            "shadow.light_source.position.x": "0.8",
        },
        {
            "shadow[enabled]": "yes",
            "shadow.opacity": "0.9",
            "shadow[light_source].position[x]": "0.8",
        },
    ],
)
def test_nested_form_fields_are_applied_like_json_text(
    client: httpx.Client, services: Services, account: TestAccount, fields: dict[str, str]
) -> None:
    as_json = cut(client, account, shadow=SHADOW_JSON)
    nested = cut(client, account, **fields)
    plain = cut(client, account)
    assert nested.headers["X-Credits-Charged"] == as_json.headers["X-Credits-Charged"] == "4"
    assert plain.headers["X-Credits-Charged"] == "1"
    assert nested.content == as_json.content
    # The shadow is really there: pixels the plain cut-out leaves transparent are shaded.
    assert (image_of(nested)[..., 3] > image_of(plain)[..., 3]).sum() > 1000


def test_nested_image_transform_is_applied(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    def generate(**fields: str) -> httpx.Response:
        return client.post(
            "/v1/generate-background",
            headers={**account.headers, "Accept": "image/jpeg"},
            files={"image": ("product.png", PRODUCT, "image/png")},
            data={"scene": "marble", **fields},
        )

    nested = generate(**{"image_transform[scale]": "0.3", "image_transform.x_center": "0.3"})
    as_json = generate(image_transform='{"scale": 0.3, "x_center": 0.3}')
    plain = generate()
    assert nested.status_code == as_json.status_code == plain.status_code == 200, nested.text
    assert nested.content == as_json.content != plain.content


@pytest.mark.parametrize(
    ("value", "charged"),
    [("1", "4"), ("yes", "4"), ("on", "4"), ("true", "4"), ("0", "1"), ("no", "1")],
)
def test_shadow_takes_the_boolean_spellings_crop_takes(
    client: httpx.Client, services: Services, account: TestAccount, value: str, charged: str
) -> None:
    response = cut(client, account, shadow=value)
    assert response.status_code == 200, response.text
    assert response.headers["X-Credits-Charged"] == charged


# --- fields that would be ignored are refused --------------------------------------------------


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"json": {"image_url": URL, "shadw": True}}, "Unknown field shadw"),
        # A long unknown key is named, not echoed whole.
        ({"json": {"image_url": URL, "k" * 5000: 1}}, f"Unknown field {'k' * 80}..."),
        ({"json": {"image_url": URL, "shadow": {"enabld": True}}}, "Unknown field shadow.enabld"),
        ({"data": {"croop": "true"}}, "Unknown field croop"),
        ({"data": {"shadow[enabld]": "true"}}, "Unknown field shadow.enabld"),
        ({"data": {"image_transform[scale]": "0.5"}}, "Unknown field image_transform"),
        ({"data": {"shadow[]": "true"}}, "Invalid field name 'shadow[]'"),
        ({"data": {"shadow[enabled": "true"}}, "Invalid field name 'shadow[enabled'"),
        ({"data": {"shadow": "true", "shadow[opacity]": "0.5"}}, "clashes with shadow"),
        (
            {"data": {"shadow[enabled]": "true", "shadow.enabled": "false"}},
            "clashes with shadow[enabled]",
        ),
        ({"data": {"crop": ["true", "false"]}}, "crop: is sent more than once"),
        ({"data": {"image": "https://x.example/a.png"}}, "image: must be a file part"),
    ],
)
def test_fields_that_would_be_ignored_are_refused(
    client: httpx.Client,
    services: Services,
    account: TestAccount,
    request_kwargs: dict[str, object],
    message: str,
) -> None:
    if "data" in request_kwargs:
        request_kwargs["files"] = {"image": ("product.png", PRODUCT, "image/png")}
    response = client.post(
        "/v1/remove-background",
        headers=account.headers,
        **request_kwargs,  # type: ignore[arg-type]
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "invalid_parameter"
    assert message in body["error"] and len(body["error"]) < 200, body
    assert balance(services, account) == CREDITS

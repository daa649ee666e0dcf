"""The request most endpoint tests send (one uploaded image, asking for the image back), and the
check every error test makes of Pixelcut's envelope."""

from __future__ import annotations

import httpx

from tests.utils.factories import TestAccount


def post_image(
    client: httpx.Client, endpoint: str, account: TestAccount, data: bytes, **fields: str
) -> httpx.Response:
    return client.post(
        endpoint,
        headers={**account.headers, "Accept": "image/*"},
        files={"image": ("in.png", data)},
        data=fields,
    )


def assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_code"}
    assert body["error_code"] == code
    assert body["error"]
    assert len(response.headers["X-Request-Id"]) >= 8

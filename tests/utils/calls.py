"""The request most endpoint tests send: one uploaded image, asking for the image back."""

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

"""Python client for Retouch and Pixelcut, sync and async, on httpx.

    from retouch.client import RetouchClient

    with RetouchClient("sk_...", base_url="http://127.0.0.1:8000") as client:
        client.credits()
        cutout = client.remove_background("product.jpg", crop=True, as_="bytes").to_image()
        url = client.upscale("https://example.com/product.jpg", scale=4).url

Parameters are checked with the server's own request models before anything is sent; errors
are typed by family and carry the API's ``error_code``. 429s, 5xx and lost connections are
retried with backoff; every POST carries an ``Idempotency-Key`` reused by its retries, so
Retouch never runs (or charges) one call twice. Pixelcut documents no ``Idempotency-Key``:
against it, a POST retried after a timeout may be processed twice.
"""

from retouch.client._clients import (
    DEFAULT_BASE_URL,
    PIXELCUT_BASE_URL,
    AsyncRetouchClient,
    RetouchClient,
)
from retouch.client._wire import ImageInput, Result, ResultForm
from retouch.client.errors import (
    AuthenticationError,
    IdempotencyError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    ParameterValidationError,
    RateLimitError,
    RetouchAPIError,
    RetouchClientError,
    RetouchConnectionError,
    ServerError,
)
from retouch.schemas import ImageTransform, LightPosition, LightSource, ShadowParameter

__all__ = [
    "DEFAULT_BASE_URL",
    "PIXELCUT_BASE_URL",
    "AsyncRetouchClient",
    "AuthenticationError",
    "IdempotencyError",
    "ImageInput",
    "ImageTransform",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "LightPosition",
    "LightSource",
    "NotFoundError",
    "ParameterValidationError",
    "RateLimitError",
    "Result",
    "ResultForm",
    "RetouchAPIError",
    "RetouchClient",
    "RetouchClientError",
    "RetouchConnectionError",
    "ServerError",
    "ShadowParameter",
]

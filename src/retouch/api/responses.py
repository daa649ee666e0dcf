"""OpenAPI descriptions of the error responses, matching the spec's wording and examples."""

from __future__ import annotations

from typing import Any

from retouch.api.errors import ErrorBody

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("The input could not be processed.", "The input is invalid", "invalid_parameter"),
    401: (
        "The authentication token is missing or invalid.",
        "API Token not found",
        "invalid_auth_token",
    ),
    403: ("Not enough credits.", "Not enough API credits", "insufficient_api_credits"),
    404: ("Not found.", "Not found", "not_found"),
    409: (
        "A request with the same Idempotency-Key is still running.",
        "A request with this Idempotency-Key is still being processed; retry shortly",
        "idempotency_key_in_use",
    ),
    422: (
        "The Idempotency-Key was used for a different request.",
        "This Idempotency-Key was already used for a different request",
        "idempotency_key_reused",
    ),
    429: ("Rate limit exceeded", "Too many requests", "rate_limit_exceeded"),
    500: ("Internal service error", "Internal service error", "internal_error"),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": _ERRORS[status][0],
            "model": ErrorBody,
            "content": {
                "application/json": {
                    "example": {"error": _ERRORS[status][1], "error_code": _ERRORS[status][2]}
                }
            },
        }
        for status in statuses
    }


def image_responses(media_type: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of an image endpoint: a ``result_url`` by default, the image with ``Accept``."""
    return {
        200: {
            "description": "Success. `result_url` is valid for one hour. With `Accept: image/*` "
            "the body is the image itself.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"result_url": {"type": "string", "format": "uri"}},
                        "required": ["result_url"],
                    }
                },
                media_type: {"schema": {"type": "string", "format": "binary"}},
            },
            "headers": {
                "X-Credits-Charged": {"schema": {"type": "integer"}},
                "X-Credits-Remaining": {"schema": {"type": "integer"}},
            },
        }
    }

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
    409: ("Conflict.", "Conflict", "conflict"),
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

"""Response models and OpenAPI response declarations, matching the spec's wording and examples.

The models document bodies that routes build as plain dicts (``retouch.jobs.documents`` makes the
job document for webhooks too), so a generated client parses every field it will meet.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from retouch.api.errors import ErrorBody
from retouch.jobs.store import JobStatus


class ResultURLResponse(BaseModel):
    result_url: str = Field(
        description="Where to download the result (no API key needed); valid for one hour.",
        json_schema_extra={"format": "uri"},
    )


class JobError(BaseModel):
    message: str = Field(description="What went wrong, for people.")
    error_code: str = Field(
        description="invalid_parameter, content_filter_error, request_timeout, job_expired, "
        "job_cancelled, unexpected_error or service_unavailable."
    )


class JobDocument(BaseModel):
    """A try-on job, as GET /v1/try-on/job/{jobId} and webhooks send it."""

    job_id: str = Field(examples=["6ba7b810-9dad-11d1-80b4-00c04fd430c8"])
    status: JobStatus
    # Absent rather than null when not applicable, so SkipJsonSchema keeps null out of the schema.
    result_url: str | SkipJsonSchema[None] = Field(
        default=None,
        description="Only when `status` is `completed`; valid for one hour.",
        json_schema_extra={"format": "uri"},
    )
    error: JobError | SkipJsonSchema[None] = Field(
        default=None, description="Only when `status` is `failed`."
    )


class JobCancelledResponse(BaseModel):
    message: str = Field(examples=["Job cancelled"])


_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("The input could not be processed.", "The input is invalid", "invalid_parameter"),
    401: (
        "The authentication token is missing or invalid.",
        "API Token not found",
        "invalid_auth_token",
    ),
    403: ("Not enough credits.", "Not enough API credits", "insufficient_api_credits"),
    404: ("Not found.", "Not found", "not_found"),
    406: (
        "`Accept` allows none of the types this endpoint answers with.",
        "Accept allows none of what this endpoint answers with: image/png, application/json",
        "not_acceptable",
    ),
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
    410: (
        "The job waited longer than `RETOUCH_JOB_QUEUE_TIMEOUT_SECONDS` to start; refunded.",
        "The job expired before it could start",
        "job_expired",
    ),
    429: ("Rate limit exceeded", "Too many requests", "rate_limit_exceeded"),
    500: ("Internal service error", "Internal service error", "internal_error"),
    503: (
        "A dependency (database, storage) is unreachable; retry after `Retry-After` seconds.",
        "The service is temporarily unavailable",
        "service_unavailable",
    ),
    504: (
        "The job ran past `RETOUCH_JOB_TIMEOUT_SECONDS`; refunded.",
        "The job took too long",
        "request_timeout",
    ),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: error_response(status, *_ERRORS[status]) for status in statuses}


def error_response(status: int, description: str, message: str, code: str) -> dict[str, Any]:
    """One error response: the envelope, with the spec's example for ``code``."""
    return {
        "description": description,
        "model": ErrorBody,
        "content": {"application/json": {"example": {"error": message, "error_code": code}}},
    }


CREDIT_HEADERS = {
    "X-Credits-Charged": {
        "description": "Credits this call cost.",
        "schema": {"type": "integer"},
    },
    "X-Credits-Remaining": {
        "description": "Credits left after this call.",
        "schema": {"type": "integer"},
    },
}


def image_responses(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of an image endpoint: a ``result_url`` by default, the image (one of
    ``media_types``) with ``Accept``."""
    return {
        200: {
            "description": "Success. `result_url` is valid for one hour. With `Accept: image/*` "
            "the body is the image itself.",
            "model": ResultURLResponse,
            # JSON first, as it is the default; FastAPI fills in its schema from the model.
            "content": {
                "application/json": {},
                **{
                    media_type: {"schema": {"type": "string", "format": "binary"}}
                    for media_type in media_types
                },
            },
            "headers": CREDIT_HEADERS,
        }
    }

"""The error hierarchy every layer raises; the API renders it as Pixelcut's envelope.

Errors carry their HTTP status and the spec's ``error_code`` so that a route, an image operation
or a job worker can raise the same exception and each edge renders it its own way (a JSON body
for HTTP, a failed job's ``error`` object for jobs).
"""

from __future__ import annotations


class RetouchError(Exception):
    """Base class: a client-visible failure with a status and a machine-readable code."""

    status: int = 500
    error_code: str = "internal_error"
    default_message: str = "Internal service error"

    def __init__(
        self, message: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequestBody(RetouchError):
    status = 400
    error_code = "invalid_request_body"
    default_message = "The request body is empty or invalid"


class MissingParameter(RetouchError):
    status = 400
    error_code = "missing_parameter"
    default_message = "A required parameter was not provided"


class InvalidParameter(RetouchError):
    status = 400
    error_code = "invalid_parameter"
    default_message = "A parameter was provided but is invalid"


class UnsupportedContentType(RetouchError):
    status = 400
    error_code = "unsupported_content_type"
    default_message = "Content-Type must be application/json or multipart/form-data"


class MalformedImage(RetouchError):
    status = 400
    error_code = "malformed_image"
    default_message = "The image could not be decoded"


class UnsupportedImageFormat(RetouchError):
    status = 400
    error_code = "unsupported_image_format"
    default_message = "The image format is not supported"


class FileSizeTooLarge(RetouchError):
    status = 400
    error_code = "file_size_too_large"
    default_message = "The file is too large"


class ResolutionTooHigh(RetouchError):
    status = 400
    error_code = "resolution_too_high"
    default_message = "The image resolution is too high"


class UnknownForeground(RetouchError):
    status = 400
    error_code = "unknown_foreground"
    default_message = "No foreground subject could be detected"


class InvalidAuthToken(RetouchError):
    status = 401
    error_code = "invalid_auth_token"
    default_message = "API Token not found"


class InsufficientCredits(RetouchError):
    status = 403
    error_code = "insufficient_api_credits"
    default_message = "Not enough API credits"


class NotFound(RetouchError):
    status = 404
    error_code = "not_found"
    default_message = "Not found"


class NotAcceptable(RetouchError):
    status = 406
    error_code = "not_acceptable"
    default_message = "None of the media types in Accept can be produced"


class Conflict(RetouchError):
    status = 409
    error_code = "conflict"
    default_message = "The request conflicts with the current state"


class RequestTimeout(RetouchError):
    status = 408
    error_code = "request_timeout"
    default_message = "The request body was not received in time"


class ClientDisconnected(RetouchError):
    """The client hung up before its work started: the work is dropped and refunded. Nobody
    reads the answer; 499 is nginx's "client closed request", which the access log shows."""

    status = 499
    error_code = "client_closed_request"
    default_message = "The client closed the connection before the work started"


class RateLimitExceeded(RetouchError):
    status = 429
    error_code = "rate_limit_exceeded"
    default_message = "Too many requests"


class ServiceUnavailable(RetouchError):
    status = 503
    error_code = "service_unavailable"
    default_message = "Service temporarily unavailable"

    def __init__(
        self, message: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        # Transient by definition: say when to try again, as the database outage answer does.
        super().__init__(message, headers={"Retry-After": "5", **(headers or {})})


class IdempotencyKeyInUse(RetouchError):
    status = 409
    error_code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed; retry shortly"


class IdempotencyKeyReused(RetouchError):
    status = 422
    error_code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used for a different request"


class ServerBusy(RateLimitExceeded):
    """The work queue is full: the same 429 clients already retry, with a short Retry-After."""

    default_message = "The server is busy; retry shortly"

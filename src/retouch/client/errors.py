"""The client's exceptions: one class per family of the API's error envelope.

Catch ``RetouchAPIError`` for every answer the server refused, a subclass for one family, or
``RetouchClientError`` for anything this client raises (refusals and unreachable servers alike).
"""

from __future__ import annotations


class RetouchClientError(Exception):
    """Base class of everything the client raises."""


class RetouchConnectionError(RetouchClientError):
    """No answer at all (connection refused or dropped, timeout), after every allowed try."""


class RetouchAPIError(RetouchClientError):
    """The server answered with an error status.

    ``error_code`` is the envelope's machine-readable code (``None`` when the body was not the
    envelope, e.g. a proxy's HTML page), ``request_id`` the server's ``X-Request-Id`` to quote
    when reporting a problem, and ``retry_after`` its ``Retry-After`` in seconds, if it sent one.
    """

    def __init__(
        self,
        status: int,
        error_code: str | None,
        message: str,
        request_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {error_code or 'error'}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


class InvalidRequestError(RetouchAPIError):
    """400: the parameters or the image can't be processed; sending it again won't help."""


class ParameterValidationError(InvalidRequestError):
    """A parameter was refused by the client before anything was sent, by the same rules and
    with the same ``error_code`` and message as the server's 400; ``request_id`` is ``None``."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(400, error_code, message)


class AuthenticationError(RetouchAPIError):
    """401: the API key is missing, unknown or revoked."""


class InsufficientCreditsError(RetouchAPIError):
    """403: the account has too few credits for the call; nothing was charged."""


class NotFoundError(RetouchAPIError):
    """404: no such path (or result)."""


class IdempotencyError(RetouchAPIError):
    """409 or 422: the ``Idempotency-Key`` is still in use, or was used for another request."""


class RateLimitError(RetouchAPIError):
    """429: still over the rate limit after every allowed try."""


class ServerError(RetouchAPIError):
    """5xx: still failing after every allowed try."""


_BY_STATUS: dict[int, type[RetouchAPIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: InsufficientCreditsError,
    404: NotFoundError,
    409: IdempotencyError,
    422: IdempotencyError,
    429: RateLimitError,
}


def error_class(status: int) -> type[RetouchAPIError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, RetouchAPIError)

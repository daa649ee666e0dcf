"""The error envelope: every failure leaves the API as ``{"error": ..., "error_code": ...}``."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from retouch.errors import RetouchError, ServiceUnavailable

logger = logging.getLogger(__name__)

# Codes for plain HTTP errors raised by the framework itself (routing, methods).
_HTTP_CODES = {
    400: "invalid_request_body",
    401: "invalid_auth_token",
    404: "not_found",
    405: "method_not_allowed",
    413: "file_size_too_large",
    415: "unsupported_content_type",
    429: "rate_limit_exceeded",
}


class ErrorBody(BaseModel):
    """Pixelcut's error body."""

    error: str
    error_code: str


def error_response(
    status: int, error_code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": message, "error_code": error_code}, status_code=status, headers=headers
    )


async def _retouch_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RetouchError)
    return error_response(exc.status, exc.error_code, exc.message, exc.headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    code = _HTTP_CODES.get(exc.status_code, phrase.lower().replace(" ", "_"))
    message = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else phrase
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    kind = first.get("type", "")
    field = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
    if kind == "json_invalid":
        return error_response(400, "invalid_request_body", "The request body is not valid JSON")
    if kind == "missing":
        return error_response(400, "missing_parameter", f"{field} is required")
    return error_response(400, "invalid_parameter", f"{field}: {first.get('msg', 'invalid')}")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # OperationalError is the DBAPI's "not your fault" class: refused connections, a server
    # going away, SQLite's lock timeout. All are transient, so the client is told to retry.
    assert isinstance(exc, OperationalError)
    logger.error("database unavailable: %s", exc.orig)
    unavailable = ServiceUnavailable("The database is unavailable; retry shortly")
    return await _retouch_error(request, unavailable)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RetouchError, _retouch_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_error)
    # Any other exception is answered with a 500 envelope by RequestContextMiddleware.

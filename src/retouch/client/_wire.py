"""What goes on the wire and what comes back: request building and response parsing, with no
I/O, so the sync and async clients share every byte of it."""

from __future__ import annotations

import io
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar

import httpx
import pydantic

from retouch.client.errors import ParameterValidationError, RetouchAPIError, error_class
from retouch.schemas import RequestModel, spec_error

if TYPE_CHECKING:
    from PIL import Image

T = TypeVar("T")
M = TypeVar("M", bound=RequestModel)

# A string, so that naming PIL's type does not import Pillow for callers who never use it.
ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | Image.Image"
"""A file path, the encoded bytes, a PIL image, or an ``http(s)://`` URL the server fetches."""

ResultForm = Literal["url", "bytes"]
"""``"url"``: a ``result_url`` (valid for an hour); ``"bytes"``: the image in the response."""

FilePart = tuple[str, bytes, str]


@dataclass(frozen=True)
class Result:
    """One image operation's outcome: ``url`` or ``data`` (with its ``media_type``), as asked.

    The credit counts come from Retouch's ``X-Credits-*`` headers and are ``None`` where a server
    (Pixelcut) does not send them.
    """

    url: str | None
    data: bytes | None
    media_type: str | None
    credits_charged: int | None
    credits_remaining: int | None
    request_id: str | None

    def to_image(self) -> Image.Image:
        if self.data is None:
            raise ValueError("This result is a URL; ask for as_='bytes' to get the image itself")
        from PIL import Image  # only callers who want an image object pay for Pillow

        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


@dataclass(frozen=True)
class Call(Generic[T]):
    """One logical API call: the request to send (as often as retries need) and its parser."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    headers: Mapping[str, str]
    json: Mapping[str, Any] | None = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, FilePart] | None = None

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(
            self.method,
            self.path,
            headers=dict(self.headers),
            json=self.json,
            data=self.data,
            files=self.files,
        )


def credits_call() -> Call[int]:
    return Call("GET", "/v1/credits", _parse_credits, {"Accept": "application/json"})


def image_call(
    path: str,
    model: type[RequestModel],
    image: ImageInput,
    fields: Mapping[str, Any],
    *,
    as_: ResultForm,
    idempotency_key: str | None,
) -> Call[Result]:
    """A POST to an image endpoint. ``fields`` set to ``None`` are left to the server's
    defaults (and unsent, so Retouch-only ones never reach Pixelcut)."""
    if as_ not in ("url", "bytes"):
        raise ValueError(f"as_ must be 'url' or 'bytes', not {as_!r}")
    headers = {
        "Accept": "application/json" if as_ == "url" else "image/*",
        # One key per logical call, reused by each of its retries: the server replays the first
        # success instead of running (and charging) the call again.
        "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
    }
    given = {name: value for name, value in fields.items() if value is not None}
    if isinstance(image, str) and image.lower().startswith(("http://", "https://")):
        params = validate(model, {"image_url": image, **given})
        body = params.model_dump(mode="json", exclude_unset=True)
        return Call("POST", path, _result_parser(as_), headers, json=body)
    params = validate(model, given)
    form = {
        name: _form_text(value)
        for name, value in params.model_dump(mode="json", exclude_unset=True).items()
    }
    return Call(
        "POST", path, _result_parser(as_), headers, data=form, files={"image": _file_part(image)}
    )


def validate(model: type[M], fields: Mapping[str, Any]) -> M:
    """The server's validation, raising what its 400 would say.

    The message comes from ``retouch.schemas.spec_error``, as the server's does.
    """
    try:
        return model.model_validate(fields)
    except pydantic.ValidationError as exc:
        code, message = spec_error(exc)
        raise ParameterValidationError(code, message) from exc


def _form_text(value: Any) -> str:
    # Multipart carries text: booleans as true/false and objects as JSON, as the server reads them.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


def _file_part(image: ImageInput) -> FilePart:
    # A PIL image can only come from a caller who has imported Pillow already.
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(image, pil.Image):
        # PNG: lossless, and it keeps an alpha channel the server may use as the subject.
        buffer = io.BytesIO()
        (image if image.mode in _PNG_MODES else image.convert("RGB")).save(buffer, "PNG")
        return "image.png", buffer.getvalue(), "image/png"
    if isinstance(image, bytes):
        media_type = _sniff(image)
        return f"image.{media_type.rpartition('/')[2]}", image, media_type
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        data = path.read_bytes()
        return path.name, data, _sniff(data)
    raise TypeError(f"image must be a path, bytes, a PIL image or a URL, not {type(image)}")


def _sniff(data: bytes) -> str:
    """The part's Content-Type, as a browser or curl would label the file."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def api_error(response: httpx.Response) -> RetouchAPIError:
    """The typed exception for an error response, from the ``{"error", "error_code"}`` envelope
    when the body is one."""
    message, code = response.reason_phrase or f"HTTP {response.status_code}", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
        code = body["error_code"] if isinstance(body.get("error_code"), str) else None
    return error_class(response.status_code)(
        response.status_code,
        code,
        message,
        response.headers.get("X-Request-Id"),
        retry_after=retry_after(response),
    )


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: RFC 9110 allows delay-seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _unexpected(response: httpx.Response, what: str) -> RetouchAPIError:
    return RetouchAPIError(
        response.status_code,
        None,
        f"Unexpected response: {what}",
        response.headers.get("X-Request-Id"),
    )


def _parse_credits(response: httpx.Response) -> int:
    if not response.is_success:
        raise api_error(response)
    try:
        # Retouch sends the decimal string the schema types; Pixelcut's example shows a number.
        return int(response.json()["credits_remaining"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _unexpected(response, "no credits_remaining in the body") from exc


def _result_parser(as_: ResultForm) -> Callable[[httpx.Response], Result]:
    def parse(response: httpx.Response) -> Result:
        if not response.is_success:
            raise api_error(response)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        url = data = None
        if as_ == "url":
            try:
                url = str(response.json()["result_url"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _unexpected(response, "no result_url in the body") from exc
        elif media_type.startswith("image/"):
            data = response.content
        else:
            raise _unexpected(response, f"{media_type or 'no Content-Type'} instead of an image")
        return Result(
            url=url,
            data=data,
            media_type=media_type if data is not None else None,
            credits_charged=_int_header(response, "X-Credits-Charged"),
            credits_remaining=_int_header(response, "X-Credits-Remaining"),
            request_id=response.headers.get("X-Request-Id"),
        )

    return parse


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None

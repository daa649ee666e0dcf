"""Request parsing shared by every image endpoint: JSON or multipart in, a validated model out.

Pixelcut accepts ``application/json`` (images by URL) and ``multipart/form-data`` (the same fields
as form fields plus file parts; an uploaded file wins over its URL). In multipart, scalars arrive
as text, which pydantic's lax mode coerces ("true", "2"), and objects arrive as JSON text or field
by field, as form libraries send them (``shadow[enabled]=true`` or ``shadow.enabled=true``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from retouch.app_state import Services
from retouch.errors import (
    InvalidParameter,
    InvalidRequestBody,
    MissingParameter,
    RetouchError,
    UnsupportedContentType,
)
from retouch.fetch import fetch_url, parse_http_url
from retouch.processing import probe_input
from retouch.schemas import spec_error

M = TypeVar("M", bound=BaseModel)

# The deepest Pixelcut body (shadow.light_source.position) is four levels; Python's json module
# recurses once per level and fails near a thousand.
MAX_JSON_DEPTH = 32
# No Pixelcut value needs more; int() of a 4300-digit string is a ValueError, and slow below that.
MAX_JSON_DIGITS = 100
# JSON's string rule (any escaped character, else anything but a quote or a backslash). A string
# json.loads would reject stops the parse there, so a mismatch after it does not matter.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LONG_NUMBER = re.compile(rb"[0-9]{%d}" % (MAX_JSON_DIGITS + 1))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = np.zeros(256, np.int8)
_BRACKET_STEPS[list(b"[{")] = 1
_BRACKET_STEPS[list(b"]}")] = -1


@dataclass(frozen=True)
class ImageSource:
    """Where one input image comes from: uploaded bytes, or a URL still to be fetched."""

    field: str
    data: bytes | None = None
    url: str | None = None

    def describe(self) -> dict[str, str]:
        """A stable identity for idempotency fingerprints."""
        if self.data is not None:
            return {"sha256": hashlib.sha256(self.data).hexdigest()}
        return {"url": self.url or ""}


async def parse_image_request(
    request: Request, model: type[M], *, images: Sequence[str] = ("image",)
) -> tuple[M, dict[str, ImageSource]]:
    """Validate the body against ``model``; each name in ``images`` is a file part ``name`` or a
    URL field ``name_url``. Raises the spec's 400 errors."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    files: dict[str, bytes] = {}
    if content_type == "application/json":
        fields = await _json_fields(request)
    elif content_type == "multipart/form-data":
        fields, files = await _multipart_fields(request, images)
    else:
        raise UnsupportedContentType(
            f"Content-Type {content_type or '(none)'} is not supported; "
            "send application/json or multipart/form-data"
        )
    params = validate(model, fields)
    sources: dict[str, ImageSource] = {}
    for name in images:
        url = getattr(params, f"{name}_url", None)
        if name in files:
            sources[name] = ImageSource(field=name, data=files[name])
        elif url:
            # Every URL is checked before the first is fetched, so none is fetched in vain.
            parse_http_url(str(url), f"{name}_url")
            sources[name] = ImageSource(field=f"{name}_url", url=str(url))
        else:
            raise MissingParameter(f"{name}_url (or a multipart file part {name}) is required")
    return params, sources


def validate(model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise _to_spec_error(exc) from None


def _to_spec_error(exc: ValidationError) -> InvalidParameter | MissingParameter:
    code, message = spec_error(exc)
    return MissingParameter(message) if code == "missing_parameter" else InvalidParameter(message)


async def _json_fields(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        raise InvalidRequestBody("The request body is empty")
    # Off the event loop: a body of many megabytes takes a while to scan and parse.
    fields = await run_in_threadpool(_parse_json, body, InvalidRequestBody, "The request body")
    if not isinstance(fields, dict):
        raise InvalidRequestBody("The request body must be a JSON object")
    return fields


async def _multipart_fields(
    request: Request, images: Sequence[str]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    try:
        form = await request.form(max_files=len(images), max_fields=100)
    except RetouchError:
        raise
    except Exception as exc:  # python-multipart raises several unrelated types
        raise InvalidRequestBody(f"The multipart body could not be parsed: {exc}") from None
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    given: dict[tuple[str, ...], str] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in images:
                    raise InvalidParameter(f"Unexpected file part {name!r}")
                if name in files:
                    raise InvalidParameter(f"Invalid {name}: the file part is sent more than once")
                files[name] = await value.read()
            elif name in images:
                raise InvalidParameter(
                    f"Invalid {name}: must be a file part (with a filename); "
                    f"send a URL as {name}_url"
                )
            else:
                _set_field(fields, given, name, _form_value(name, value))
    finally:
        await form.close()
    return fields, files


# A form field's name: a field, then nested keys as ``[key]`` (qs, jQuery, PHP, Rails) or
# ``.key`` (dotted paths), so ``shadow[light_source][position][x]`` is ``shadow.light_source...``.
_NAME = re.compile(r"[A-Za-z_]\w*")
_NESTED = re.compile(r"\[([A-Za-z_]\w*)\]|\.([A-Za-z_]\w*)")


def _field_path(name: str) -> tuple[str, ...]:
    head = _NAME.match(name)
    if head is None:
        raise InvalidParameter(f"Unknown field {name!r}")
    path, position = [head.group()], head.end()
    while position < len(name):
        key = _NESTED.match(name, position)
        if key is None:
            raise InvalidParameter(
                f"Invalid field name {name!r}: write nested fields as shadow[enabled] or "
                "shadow.enabled"
            )
        path.append(key.group(1) or key.group(2))
        position = key.end()
    return tuple(path)


def _set_field(
    fields: dict[str, Any], given: dict[tuple[str, ...], str], name: str, value: Any
) -> None:
    """Put one form field into ``fields``, nested by its name. Every field the client sends is
    applied or refused: a field sent twice, or both whole and by parts (``shadow`` and
    ``shadow[opacity]``), is a 400 naming both, not a silent choice between them."""
    path = _field_path(name)
    for other_path, other in given.items():
        shorter = min(len(path), len(other_path))
        if path[:shorter] == other_path[:shorter]:
            clash = "is sent more than once" if other == name else f"clashes with {other}"
            raise InvalidParameter(f"Invalid {name}: {clash}")
    given[path] = name
    node = fields
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _form_value(name: str, value: str) -> Any:
    text = value.strip()
    if text.startswith("{"):
        return _parse_json(text.encode(), InvalidParameter, f"Invalid {name}: the value")
    return value


def _parse_json(
    text: bytes, error: type[InvalidRequestBody | InvalidParameter], subject: str
) -> Any:
    """``text`` parsed, or ``error`` saying what is wrong with ``subject``.

    Two things are refused before ``json.loads`` sees them, by a scan at C speed (strings
    blanked, then brackets counted): nesting deep enough to exhaust the parser's recursion (a
    RecursionError), and an integer too long for ``int()`` (CPython refuses 4300+ digits).
    """
    bare = _JSON_STRING.sub(b'""', text)
    if _LONG_NUMBER.search(bare):
        raise error(f"{subject} holds a number longer than {MAX_JSON_DIGITS} digits")
    steps = _BRACKET_STEPS[np.frombuffer(bare.translate(None, _NOT_BRACKETS), np.uint8)]
    if steps.size and int(np.cumsum(steps, dtype=np.int32).max()) > MAX_JSON_DEPTH:
        raise error(f"{subject} is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise error(f"{subject} is not valid JSON") from None


async def load_image(services: Services, source: ImageSource) -> bytes:
    """The bytes of an input image, uploaded or fetched under the SSRF and size guards, checked
    from the header against the configured limits. The check runs in the I/O threadpool, not
    the CPU pool: an upload that is no image, or too large, is refused at once rather than after
    every image queued ahead of it."""
    settings = services.settings
    if source.data is not None:
        data = source.data
    else:
        assert source.url is not None
        data = await fetch_url(
            source.url,
            max_bytes=settings.image_max_bytes,
            allowed_networks=settings.fetch_allow_networks,
            total_timeout=settings.fetch_timeout_seconds,
            field=source.field,
        )
    await run_in_threadpool(probe_input, settings, data)
    return data

"""OpenAPI for endpoints whose bodies are parsed by hand (JSON or multipart, see ``inputs``).

FastAPI documents only bodies it parses itself, so each image route describes its request with
the same pydantic model that validates it, and the models' schemas are added to the document's
components here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"
# Per request model: the image names its body carries (``image`` as a file part or ``image_url``).
_models: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {}
_IMAGE_TYPES = "image/png, image/jpeg, image/webp"


def request_body(model: type[BaseModel], *, images: Sequence[str] = ("image",)) -> dict[str, Any]:
    """``openapi_extra`` for a route taking ``model`` as JSON or as multipart with file parts.

    The two encodings get their own schemas (see ``_request_schemas``): in JSON every image is a
    required ``<name>_url``; in multipart each image is a ``<name>`` file part or its URL.
    """
    _models[model.__name__] = (model, tuple(images))
    name = model.__name__
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=name)}},
                "multipart/form-data": {
                    "schema": {"$ref": _REF.format(model=f"{name}Multipart")},
                    # Objects go as JSON text (also accepted: one field per member, as
                    # shadow[enabled] or shadow.enabled, which OpenAPI cannot describe).
                    "encoding": {
                        **{image: {"contentType": _IMAGE_TYPES} for image in images},
                        **{
                            field: {"contentType": "application/json"}
                            for field in _object_fields(model)
                        },
                    },
                },
            },
        }
    }


def _object_fields(model: type[BaseModel]) -> list[str]:
    fields = model.model_json_schema(mode="validation")["properties"]
    return [name for name, schema in fields.items() if "$ref" in json.dumps(schema)]


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema without the ``null`` branch (and ``null`` default) pydantic gives an
    optional field: null is accepted as "not given", but no client needs to send it, and
    generated clients get plain types."""
    options = [option for option in schema.get("anyOf", ()) if option != {"type": "null"}]
    if "anyOf" not in schema or not options:
        return schema
    rest = {
        key: value
        for key, value in schema.items()
        if key != "anyOf" and not (key == "default" and value is None)
    }
    return {**options[0], **rest} if len(options) == 1 else {"anyOf": options, **rest}


def _fields_not_null(schema: dict[str, Any]) -> dict[str, Any]:
    if "properties" not in schema:
        return schema
    return {
        **schema,
        "properties": {name: _not_null(field) for name, field in schema["properties"].items()},
    }


def _request_schemas(model: type[BaseModel], images: Sequence[str]) -> dict[str, Any]:
    """The JSON body's schema (image URLs required) and the multipart form's (file parts added;
    each image required as its file part or its URL)."""
    schema = _fields_not_null(model.model_json_schema(ref_template=_REF, mode="validation"))
    defs = {name: _fields_not_null(nested) for name, nested in schema.pop("$defs", {}).items()}
    properties = schema["properties"]
    urls = [f"{image}_url" for image in images]
    others = [name for name in schema.get("required", ()) if name not in urls]
    as_json = {**schema, "properties": properties, "required": [*urls, *others]}
    files = {
        image: {
            "type": "string",
            "format": "binary",
            "description": f"The {image.replace('_', ' ')} file; wins over `{image}_url` if both "
            "are sent.",
        }
        for image in images
    }
    alternatives = [
        {"anyOf": [{"required": [image]}, {"required": [f"{image}_url"]}]} for image in images
    ]
    form = {
        **schema,
        "title": f"{schema.get('title', model.__name__)} (multipart)",
        "description": "Each image as a file part or by URL (at least one of the two).",
        "properties": {**files, **properties},
        # Under allOf even for one image: generators read a top-level anyOf as a union of
        # types, while allOf is merged into the object and its properties kept.
        "allOf": alternatives,
    }
    form.pop("required", None)
    if others:
        form["required"] = others
    return {**defs, model.__name__: as_json, f"{model.__name__}Multipart": form}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            _drop_framework_validation_errors(document)
            for model, images in _models.values():
                schemas.update(_request_schemas(model, images))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_framework_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 for every route with parameters; Retouch answers invalid input
    with Pixelcut's 400 envelope instead, so those entries would mislead client generators."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        document["components"]["schemas"].pop(name, None)

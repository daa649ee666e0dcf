"""OpenAPI for endpoints whose bodies are parsed by hand (JSON or multipart, see ``inputs``).

FastAPI documents only bodies it parses itself, so each image route describes its request with
the same pydantic model that validates it, and the models' schemas are added to the document's
components here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"
_models: dict[str, type[BaseModel]] = {}


def request_body(model: type[BaseModel], *, images: Sequence[str] = ("image",)) -> dict[str, Any]:
    """``openapi_extra`` for a route taking ``model`` as JSON or as multipart with file parts."""
    _models[model.__name__] = model
    multipart = {
        "allOf": [
            {"$ref": _REF.format(model=model.__name__)},
            {
                "type": "object",
                "properties": {
                    name: {
                        "type": "string",
                        "format": "binary",
                        "description": f"The image file; wins over `{name}_url` if both are sent.",
                    }
                    for name in images
                },
            },
        ]
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}},
                "multipart/form-data": {"schema": multipart},
            },
        }
    }


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
            for model in _models.values():
                schema = model.model_json_schema(ref_template=_REF, mode="validation")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
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

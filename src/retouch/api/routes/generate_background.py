"""POST /v1/generate-background."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retouch import processing
from retouch.api.deps import CallerDep, IdempotencyKeyDep, ServicesDep
from retouch.api.inputs import parse_image_request
from retouch.api.openapi import request_body
from retouch.api.operations import run_image_operation
from retouch.api.responses import error_responses, image_responses
from retouch.pipeline import Output
from retouch.schemas import GenerateBackgroundRequest

router = APIRouter(tags=["Endpoints"])

_SUCCESS = image_responses("image/jpeg")
_SUCCESS[200]["headers"] = {
    **_SUCCESS[200]["headers"],
    processing.SCENE_HEADER: {
        "description": "The scene drawn: the `scene` preset, or the library scene nearest in "
        "meaning to `prompt` (see the README for the list).",
        "schema": {"type": "string"},
    },
}


@router.post(
    "/v1/generate-background",
    summary="Generate Background",
    description="Place the subject on a new 1024x1024 scene (JPEG). An image without "
    "transparency has its background removed first. The default engine draws procedural "
    "photographic scenes: `scene` picks a preset; otherwise the scene nearest in meaning to "
    "`prompt` (sentence embeddings) is drawn. The `X-Retouch-Scene` response header names "
    "the scene used.",
    operation_id="generate-background",
    openapi_extra=request_body(GenerateBackgroundRequest),
    responses={
        **_SUCCESS,
        **error_responses(400, 401, 403, 406, 409, 422, 429, 500),
    },
    response_class=Response,
)
async def generate_background_route(
    request: Request, caller: CallerDep, services: ServicesDep, idempotency_key: IdempotencyKeyDep
) -> Response:
    params, sources = await parse_image_request(request, GenerateBackgroundRequest)

    def process(inputs: dict[str, bytes]) -> Output:
        return processing.generate_background(
            params, inputs["image"], services.engines, services.settings
        )

    return await run_image_operation(
        request,
        services,
        caller,
        endpoint="generate-background",
        price=services.pricing.generate_background(),
        params=params,
        sources=sources,
        idempotency_key=idempotency_key,
        process=process,
        media_types=("image/jpeg",),
    )

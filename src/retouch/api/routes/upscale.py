"""POST /v1/upscale."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retouch import processing
from retouch.api.deps import CallerDep, IdempotencyKeyDep, ServicesDep
from retouch.api.inputs import parse_image_request
from retouch.api.openapi import request_body
from retouch.api.operations import run_image_operation
from retouch.api.responses import error_responses, image_responses
from retouch.pipeline import Output
from retouch.schemas import UpscaleRequest

router = APIRouter(tags=["Endpoints"])


@router.post(
    "/v1/upscale",
    summary="Upscale",
    description="Enlarge 2x or 4x with the SPAN super-resolution network. Output is JPEG, or PNG "
    "when the input has an alpha channel (upscaled too). The result is at most 6000 px on a "
    "side, so inputs may be at most 3000 px (2x) or 1500 px (4x).",
    operation_id="upscale",
    openapi_extra=request_body(UpscaleRequest),
    responses={
        **image_responses("image/jpeg", "image/png"),
        **error_responses(400, 401, 403, 406, 409, 422, 429, 500),
    },
    response_class=Response,
)
async def upscale_route(
    request: Request, caller: CallerDep, services: ServicesDep, idempotency_key: IdempotencyKeyDep
) -> Response:
    params, sources = await parse_image_request(request, UpscaleRequest)

    def process(inputs: dict[str, bytes]) -> Output:
        return processing.upscale(params, inputs["image"], services.engines, services.settings)

    return await run_image_operation(
        request,
        services,
        caller,
        endpoint="upscale",
        price=services.pricing.upscale(),
        params=params,
        sources=sources,
        idempotency_key=idempotency_key,
        process=process,
        media_types=("image/jpeg", "image/png"),
    )

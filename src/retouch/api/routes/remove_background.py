"""POST /v1/remove-background."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retouch import processing
from retouch.api.deps import CallerDep, IdempotencyKeyDep, ServicesDep
from retouch.api.inputs import parse_image_request
from retouch.api.openapi import request_body
from retouch.api.operations import run_image_operation
from retouch.api.responses import error_responses, image_responses
from retouch.pipeline import Output
from retouch.schemas import RemoveBackgroundRequest

router = APIRouter(tags=["Endpoints"])


@router.post(
    "/v1/remove-background",
    summary="Remove Background",
    description="Cut out the subject onto transparency; optionally crop to it, add margins and "
    "cast a shadow. Output is always PNG. Costs 1 credit, +3 with `shadow` (configurable).",
    operation_id="remove-background",
    openapi_extra=request_body(RemoveBackgroundRequest),
    responses={
        **image_responses("image/png"),
        **error_responses(400, 401, 403, 406, 409, 422, 429, 500),
    },
    response_class=Response,
)
async def remove_background(
    request: Request, caller: CallerDep, services: ServicesDep, idempotency_key: IdempotencyKeyDep
) -> Response:
    params, sources = await parse_image_request(request, RemoveBackgroundRequest)

    def process(inputs: dict[str, bytes]) -> Output:
        return processing.remove_background(
            params, inputs["image"], services.engines, services.settings
        )

    return await run_image_operation(
        request,
        services,
        caller,
        endpoint="remove-background",
        price=services.pricing.remove_background(shadow=params.shadow_enabled),
        params=params,
        sources=sources,
        idempotency_key=idempotency_key,
        process=process,
        media_types=("image/png",),
    )

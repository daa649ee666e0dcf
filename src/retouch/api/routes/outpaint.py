"""POST /v1/outpaint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retouch import processing
from retouch.api.deps import CallerDep, IdempotencyKeyDep, ServicesDep
from retouch.api.inputs import parse_image_request
from retouch.api.openapi import request_body
from retouch.api.operations import run_image_operation
from retouch.api.responses import error_responses, image_responses
from retouch.pipeline import Output
from retouch.schemas import OutpaintRequest

router = APIRouter(tags=["Endpoints"])


@router.post(
    "/v1/outpaint",
    summary="Outpaint",
    description="Extend the image by `left`, `top`, `right` and `bottom` pixels (0-2000 each, at "
    "least one > 0), continuing its content into the new border; the original pixels are kept "
    "exactly. The default engine is PatchMatch texture synthesis; `creativity` varies the fill.",
    operation_id="outpaint",
    openapi_extra=request_body(OutpaintRequest),
    responses={
        **image_responses("image/jpeg", "image/png"),
        **error_responses(400, 401, 403, 406, 409, 422, 429, 500),
    },
    response_class=Response,
)
async def outpaint_route(
    request: Request, caller: CallerDep, services: ServicesDep, idempotency_key: IdempotencyKeyDep
) -> Response:
    params, sources = await parse_image_request(request, OutpaintRequest)

    def process(inputs: dict[str, bytes]) -> Output:
        return processing.outpaint(params, inputs["image"], services.engines, services.settings)

    return await run_image_operation(
        request,
        services,
        caller,
        endpoint="outpaint",
        price=services.pricing.outpaint(),
        params=params,
        sources=sources,
        idempotency_key=idempotency_key,
        process=process,
        media_types=(f"image/{params.output_format}",),
    )

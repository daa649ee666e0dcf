"""POST /v1/remove-background."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retouch.api.deps import CallerDep, IdempotencyKeyDep, ServicesDep
from retouch.api.inputs import load_image, parse_image_request
from retouch.api.openapi import request_body
from retouch.api.outputs import render, wants_image
from retouch.api.responses import error_responses, image_responses
from retouch.api.schemas import RemoveBackgroundRequest
from retouch.app_state import Services
from retouch.billing.idempotency import fingerprint
from retouch.ops.codec import ImageLimits, decode_image, encode_png
from retouch.ops.remove_background import remove_background as remove_background_op
from retouch.pipeline import Output, PaidRequest, run_paid

router = APIRouter(tags=["Endpoints"])


def _process(services: Services, data: bytes, params: RemoveBackgroundRequest) -> Output:
    settings = services.settings
    decoded = decode_image(
        data,
        ImageLimits(
            max_bytes=settings.image_max_bytes,
            min_side=settings.image_min_side,
            max_side=settings.image_max_side,
        ),
    )
    rgba = remove_background_op(
        decoded.pixels,
        segmenter=services.segmenter,
        crop=params.crop_spec(),
        shadow=params.shadow_spec(),
        max_side=settings.image_max_side,
    )
    return Output(encode_png(rgba), "image/png")


@router.post(
    "/v1/remove-background",
    summary="Remove Background",
    description="Cut out the subject onto transparency; optionally crop to it, add margins and "
    "cast a shadow. Output is always PNG. Costs 1 credit, +3 with `shadow` (configurable).",
    operation_id="remove-background",
    openapi_extra=request_body(RemoveBackgroundRequest),
    responses={
        **image_responses("image/png"),
        **error_responses(400, 401, 403, 409, 422, 429, 500),
    },
    response_class=Response,
)
async def remove_background(
    request: Request, caller: CallerDep, services: ServicesDep, idempotency_key: IdempotencyKeyDep
) -> Response:
    params, sources = await parse_image_request(request, RemoveBackgroundRequest)
    image = wants_image(request)
    paid = PaidRequest(
        account_id=caller.account_id,
        request_id=request.state.request_id,
        endpoint="remove-background",
        price=services.pricing.remove_background_price(shadow=params.shadow_enabled),
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(
            endpoint="remove-background",
            params=params.model_dump(mode="json", exclude={"image_url"}),
            image=sources["image"].describe(),
        ),
    )

    async def work() -> Output:
        data = await load_image(services, sources["image"])
        return await services.executor.run(_process, services, data, params)

    delivery = await run_paid(services, paid, work)
    return render(request, services, delivery, image=image)

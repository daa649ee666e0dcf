"""What every image endpoint does around its operation: fingerprint, fetch, run in the pool,
charge through the pipeline, render. A route adds only its parsing and its ``process``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import Request, Response
from pydantic import BaseModel

from retouch.api.deps import Caller
from retouch.api.disconnect import client_gone
from retouch.api.inputs import ImageSource, load_image
from retouch.api.outputs import accept_ranges, acceptable, render, wants_image
from retouch.app_state import Services
from retouch.billing.idempotency import fingerprint
from retouch.errors import NotAcceptable
from retouch.pipeline import Output, PaidRequest, run_paid


async def run_image_operation(
    request: Request,
    services: Services,
    caller: Caller,
    *,
    endpoint: str,
    price: int,
    params: BaseModel,
    sources: dict[str, ImageSource],
    idempotency_key: str | None,
    process: Callable[[dict[str, bytes]], Output],
    media_types: Sequence[str],
) -> Response:
    """Charge ``price`` for ``process`` (run in the CPU pool on the inputs' bytes) and render.

    ``media_types`` are the image types ``process`` may return, for ``Accept``.
    """
    url_fields = {f"{name}_url" for name in sources}
    image = wants_image(request, media_types)
    paid = PaidRequest(
        account_id=caller.account_id,
        request_id=request.state.request_id,
        endpoint=endpoint,
        price=price,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(
            endpoint=endpoint,
            params=params.model_dump(mode="json", exclude=url_fields),
            images={name: source.describe() for name, source in sources.items()},
        ),
        store_result=not image,
    )

    def timed(inputs: dict[str, bytes]) -> Output:
        with services.metrics.operation.labels(endpoint).time():
            return process(inputs)

    async with client_gone(request) as gone:

        async def work() -> Output:
            inputs = {name: await load_image(services, source) for name, source in sources.items()}
            # A client gone before its turn for the CPU is refunded and its work skipped.
            output = await services.executor.run_unless(gone, timed, inputs)
            # Where the type depends on the input (upscale: PNG when it has alpha), Accept can
            # be checked only now; raising here refunds the hold.
            if image and not acceptable(accept_ranges(request), output.media_type):
                raise NotAcceptable(
                    f"The result is {output.media_type}, which Accept does not allow; nothing "
                    "was charged"
                )
            return output

        delivery = await run_paid(services, paid, work)
    if not delivery.replayed:
        services.metrics.credits.labels(endpoint).inc(delivery.credits_charged)
    return render(request, services, delivery, image=image)

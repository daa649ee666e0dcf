"""Response rendering for image endpoints: ``result_url`` JSON or the image bytes, by ``Accept``."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from retouch.app_state import Services
from retouch.pipeline import Delivery


def wants_image(request: Request) -> bool:
    """JSON unless the client asks for an image (``image/*`` or a concrete image type) and does
    not also name JSON: Pixelcut's default is JSON, including for a missing or ``*/*`` Accept."""
    accept = request.headers.get("accept", "").lower()
    ranges = [part.split(";")[0].strip() for part in accept.split(",")]
    return "application/json" not in ranges and any(r.startswith("image/") for r in ranges)


def result_url(request: Request, services: Services, key: str) -> str:
    base = (
        str(services.settings.public_base_url).rstrip("/")
        if services.settings.public_base_url
        else str(request.base_url).rstrip("/")
    )
    return services.result_url(base, key)


def render(request: Request, services: Services, delivery: Delivery, *, image: bool) -> Response:
    headers = {
        **delivery.headers,
        "X-Credits-Charged": str(delivery.credits_charged),
        "X-Credits-Remaining": str(delivery.credits_remaining),
    }
    if delivery.replayed:
        headers["Idempotent-Replayed"] = "true"
    if not image:
        assert delivery.result_key is not None  # stored whenever a URL is to be rendered
        return JSONResponse(
            {"result_url": result_url(request, services, delivery.result_key)}, headers=headers
        )
    return Response(delivery.data, media_type=delivery.media_type, headers=headers)

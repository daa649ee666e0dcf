"""Response rendering for image endpoints: ``result_url`` JSON or the image bytes, by ``Accept``.

Only image endpoints negotiate: the others (credits, try-on and its jobs) answer JSON whatever
``Accept`` says, as RFC 9110 lets a server that has a single representation do.
"""

from __future__ import annotations

from collections.abc import Sequence

import mimeparse
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from retouch.app_state import Services
from retouch.errors import InvalidParameter, NotAcceptable
from retouch.pipeline import Delivery

JSON = "application/json"
MediaRange = tuple[str, str, dict[str, str]]


def accept_ranges(request: Request) -> list[MediaRange]:
    """The request's ``Accept`` media ranges; none sent (or an empty one) is ``*/*``."""
    header = request.headers.get("accept", "").strip().lower() or "*/*"
    try:
        return [mimeparse.parse_media_range(part) for part in header.split(",") if part.strip()]
    except mimeparse.MimeTypeParseException as exc:
        raise InvalidParameter(f"Invalid Accept header: {exc}") from None


def acceptable(ranges: list[MediaRange], media_type: str) -> bool:
    """Whether ``media_type`` has a quality above 0: the most specific matching range decides,
    so ``image/*, image/png;q=0`` refuses PNG (RFC 9110, section 12.5.1)."""
    quality: float = mimeparse.quality_parsed(media_type, ranges)
    return quality > 0


def wants_image(request: Request, image_types: Sequence[str]) -> bool:
    """Whether to answer with the image itself rather than ``{"result_url"}``.

    ``image_types`` are what the endpoint can produce. The offer with the highest quality wins,
    then the one matched most specifically; JSON wins a tie, as it is Pixelcut's default, so no
    ``Accept``, ``*/*`` and ``image/png, application/json`` all get JSON. When nothing offered is
    acceptable (``image/jpeg`` from an endpoint that makes PNG) the answer is 406, before any
    work or charge.
    """
    ranges = accept_ranges(request)
    offered = [*image_types, JSON]
    (quality, _fitness), _order, best = max(
        (mimeparse.quality_and_fitness_parsed(media_type, ranges), order, media_type)
        for order, media_type in enumerate(offered)
    )
    if quality <= 0:
        raise NotAcceptable(
            f"Accept allows none of what this endpoint answers with: {', '.join(offered)}"
        )
    return best != JSON


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

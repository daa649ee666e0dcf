"""GET and HEAD /v1/results/{key}: where ``result_url``s point. The signature is the credential."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from retouch.api.deps import ServicesDep
from retouch.api.responses import error_responses
from retouch.errors import NotFound

router = APIRouter(tags=["Results"])


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image.",
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in ("image/png", "image/jpeg")
        },
        "headers": {
            "Content-Length": {"schema": {"type": "integer"}},
            "Cache-Control": {"schema": {"type": "string"}},
        },
    },
    **error_responses(404),
}


@router.get(
    "/v1/results/{key}",
    summary="Download a result",
    description="The target of a `result_url`. Valid until `expires`; afterwards 404.",
    operation_id="get-result",
    responses=_RESPONSES,
    response_class=Response,
)
@router.head(
    "/v1/results/{key}",
    summary="Check a result",
    description="The headers GET would send (type, length, caching), without the image.",
    operation_id="head-result",
    responses=_RESPONSES,
    response_class=Response,
)
async def get_result(
    key: str,
    request: Request,
    services: ServicesDep,
    expires: str = Query(default="", description="Expiry, Unix seconds (signed)."),
    signature: str = Query(default="", description="HMAC signature of the key and expiry."),
) -> Response:
    now = services.clock()
    # One answer for expired, tampered and unknown alike: a URL reveals nothing about others.
    gone = NotFound("This result does not exist or its URL has expired")
    # In a worker thread: a process that started while the database was down loads its
    # signing key here, and must not hold the event loop while it tries.
    valid = await run_in_threadpool(
        lambda: services.signer.verify(key, expires, signature, now=now)
    )
    if not valid:
        raise gone
    stored = await run_in_threadpool(services.results.get, key, now=now)
    if stored is None:
        raise gone
    max_age = max(0, int(expires) - int(now.timestamp()))
    headers = {
        "Cache-Control": f"private, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(len(stored.data)),
    }
    body = b"" if request.method == "HEAD" else stored.data
    return Response(body, media_type=stored.media_type, headers=headers)

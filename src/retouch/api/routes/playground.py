"""The web playground: ``/`` and its assets under ``/playground/``, from ``retouch/web``.

The page is plain HTML, CSS and JavaScript shipped inside the package, so it works offline and
needs no build step. It calls the public API from the browser like any other client; these
routes add nothing to the API and stay out of the OpenAPI document.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.staticfiles import StaticFiles

# The package is installed as files (migrations are read from disk too), so the resource
# folder is a real directory that StaticFiles can serve with its ETag and 304 handling.
WEB_DIR = Path(str(resources.files("retouch") / "web"))

# Everything the page needs comes from this origin; blob: and data: carry the user's own images.
# form-action 'none' stops a submit from ever reaching the address bar (and the server log) as a
# query string with the API key in it, should the script fail to load.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load (cheaply, by ETag) so an upgraded server never pairs a new page
    # with a stale script.
    "Cache-Control": "no-cache",
}

# Not checked at import: a broken install should lose the playground (404), not the API.
_static = StaticFiles(directory=WEB_DIR, check_dir=False)

router = APIRouter(include_in_schema=False)


async def _serve(name: str, request: Request) -> Response:
    response = await _static.get_response(name, request.scope)
    response.headers.update(_HEADERS)
    return response


@router.api_route("/", methods=["GET", "HEAD"])
async def playground(request: Request) -> Response:
    return await _serve("index.html", request)


@router.api_route("/playground/{name:path}", methods=["GET", "HEAD"])
async def playground_asset(name: str, request: Request) -> Response:
    # StaticFiles resolves the path and refuses anything outside WEB_DIR (404).
    return await _serve(name, request)

"""/docs: Swagger UI for the OpenAPI document, served by this server.

The UI's files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads OpenAPI
3.1) rather than a CDN, so the reference works offline; the page starts the UI from a script of
ours instead of an inline one, so it runs under the playground's Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from retouch.api.routes.playground import CONTENT_SECURITY_POLICY, WEB_DIR
from retouch.errors import NotFound

SWAGGER_DIR = Path(str(swagger_ui_path))
# Only what the page loads: the package also holds a demo page pointing at a public petstore.
ASSETS = {
    "swagger-ui.css": SWAGGER_DIR / "swagger-ui.css",
    "swagger-ui-bundle.js": SWAGGER_DIR / "swagger-ui-bundle.js",
    "favicon-32x32.png": SWAGGER_DIR / "favicon-32x32.png",
    "start.js": WEB_DIR / "docs.js",
}

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/start.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.api_route("/docs", methods=["GET", "HEAD"])
async def docs(request: Request) -> Response:
    page = PAGE.format(title=request.app.title, openapi_url=request.app.openapi_url)
    return HTMLResponse(page, headers=HEADERS)


@router.api_route("/docs/assets/{name}", methods=["GET", "HEAD"])
async def docs_asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"No documentation asset {name!r}")
    return FileResponse(path, headers=HEADERS)

"""/docs: Swagger UI for the OpenAPI document, served by this server.

The UI's files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads OpenAPI
3.1) rather than a CDN, so the reference works offline; the page starts the UI from a script of
ours instead of an inline one, so it runs under the playground's Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from retouch.api.routes.playground import CONTENT_SECURITY_POLICY, WEB_DIR
from retouch.errors import NotFound

# StaticFiles, as for the playground, for its ETag and 304 handling. Only what the page loads is
# served: the package also holds source maps and a demo page pointing at a public petstore.
_swagger = StaticFiles(directory=Path(str(swagger_ui_path)), check_dir=False)
_web = StaticFiles(directory=WEB_DIR, check_dir=False)
ASSETS = {
    "swagger-ui.css": (_swagger, "swagger-ui.css"),
    "swagger-ui-bundle.js": (_swagger, "swagger-ui-bundle.js"),
    "favicon-32x32.png": (_swagger, "favicon-32x32.png"),
    "start.js": (_web, "docs.js"),
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
async def docs_asset(name: str, request: Request) -> Response:
    if name not in ASSETS:
        raise NotFound(f"No documentation asset {name!r}")
    files, file_name = ASSETS[name]
    response = await files.get_response(file_name, request.scope)
    response.headers.update(HEADERS)
    return response

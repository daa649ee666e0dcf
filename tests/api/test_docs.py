"""/docs works offline: the page and everything it loads come from this server, under the
playground's Content-Security-Policy; FastAPI's CDN-backed pages are gone."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx

from retouch.api.routes.playground import CONTENT_SECURITY_POLICY


class References(HTMLParser):
    """Every URL the page would load or follow (src and href attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls.extend(v for k, v in attrs if k in ("src", "href") and v is not None)
        self._in_script = tag == "script" and "src" not in found

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def test_docs_page_loads_only_its_own_assets_under_the_playground_policy(
    client: httpx.Client,
) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    references = References()
    references.feed(page.text)
    # The policy forbids inline scripts, so the page has none.
    assert references.inline_scripts == 0
    assert references.urls, "the page references no assets"
    types = {}
    for url in references.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        types[url.rsplit(".", 1)[-1]] = asset.headers["content-type"].split(";")[0]
    assert types == {"css": "text/css", "js": "text/javascript", "png": "image/png"}
    # Revalidated cheaply, as the playground's files are.
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    again = client.get(bundle.url, headers={"If-None-Match": bundle.headers["etag"]})
    assert again.status_code == 304 and bundle.headers["cache-control"] == "no-cache"
    assert "cdn" not in page.text and "http" not in page.text.replace("http-equiv", "")
    # The document the UI is pointed at.
    assert '"/openapi.json"' in page.text and client.get("/openapi.json").status_code == 200


def test_only_the_docs_assets_are_served(client: httpx.Client) -> None:
    for path in (
        "/redoc",
        "/docs/oauth2-redirect",
        "/docs/assets/index.html",
        "/docs/assets/swagger-initializer.js",
        "/docs/assets/swagger-ui-bundle.js.map",
        "/docs/assets/..%2F..%2Fsecret.key",
    ):
        assert client.get(path).status_code == 404, path
    assert "/docs" not in client.get("/openapi.json").json()["paths"]

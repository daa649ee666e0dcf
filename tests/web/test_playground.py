"""The web playground, end to end in Debian's headless Chromium driven by Playwright.

Playwright is given the system browser (``executable_path``) and never downloads its own. In CI
(``CI`` set) a missing Chromium or Playwright fails the run; elsewhere those tests skip with the
reason. The first test also refreshes ``docs/playground.png``, the README's screenshot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from retouch.app_state import Services
from tests.utils.factories import make_account
from tests.utils.images import composite, decode, encode
from tests.utils.server import LiveServer

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError as exc:  # only the browser tests need it; the HTTP checks still run
    PLAYWRIGHT_MISSING: ImportError | None = exc
else:
    PLAYWRIGHT_MISSING = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
# This machine's network is closed: without the background-networking flags Chromium keeps
# trying to reach Google's hosts. The sandbox needs user namespaces that CI's root user lacks.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "playground.png"
VIEWPORT = {"width": 1000, "height": 700}


def _unavailable(what: str, reason: object) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} must be installed in CI: {reason}")
    pytest.skip(f"{what} is not available here: {reason}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if PLAYWRIGHT_MISSING is not None:
        _unavailable("Playwright (pip install playwright)", PLAYWRIGHT_MISSING)
    if not CHROMIUM.exists():
        _unavailable("Chromium (apt-get install chromium)", f"{CHROMIUM} does not exist")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


class PageWatch:
    """What the page did besides rendering: every URL it requested, and its complaints."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.problems: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))

    def _request(self, request: Request) -> None:
        self.urls.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        # A refused API call (the bad-key test) is logged by Chromium as a failed load; that is
        # the point of that test, not a page problem. Anything else an error logs is.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(message.text)

    def assert_clean(self, origin: str) -> None:
        elsewhere = [url for url in self.urls if not url.startswith((origin, "blob:", "data:"))]
        assert elsewhere == [], "the page loaded something from another origin"
        assert self.problems == []


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    opened = context.new_page()
    # Playwright's default 30 s is for pages; a cold model run on a busy CI machine may need more.
    opened.set_default_timeout(60_000)
    yield opened
    context.close()


@pytest.fixture
def product_png(tmp_path: Path) -> Path:
    pixels, _mask = composite("blobs", seed=3)
    path = tmp_path / "bottle.png"
    path.write_bytes(encode(pixels))
    return path


@pytest.mark.slow
def test_remove_background_in_the_browser(
    server: LiveServer, services: Services, page: Page, product_png: Path
) -> None:
    account = make_account(services, credits=10)
    watch = PageWatch(page)
    page.goto(f"{server.url}/")

    page.get_by_label("API key").fill(account.key)
    credits = page.get_by_role("status", name="Credits left")
    expect(credits).to_have_text("10")
    page.get_by_label("Choose an image").set_input_files(product_png)
    expect(page.locator("#drop-text")).to_contain_text("bottle.png")
    page.get_by_role("button", name="Remove background").click()

    result = page.get_by_role("img", name="Result")
    expect(result).to_be_visible()
    size = result.evaluate("img => [img.naturalWidth, img.naturalHeight, img.src]")
    assert size[:2] == [512, 384]
    assert size[2].startswith("blob:")
    expect(page.locator("#meta")).to_have_text(re.compile(r"^PNG · 512 × 384 px · "))
    expect(credits).to_have_text("9")
    expect(page.locator("#charge")).to_have_text("Charged 1 credit · 9 left")
    expect(page.locator("#status")).to_contain_text("Done in")

    # The comparison slider is a plain range input, so the keyboard moves it.
    slider = page.get_by_role("slider", name=re.compile("^Comparison"))
    slider.focus()
    page.keyboard.press("ArrowLeft")
    expect(slider).to_have_value("49")
    expect(slider).to_have_attribute("aria-valuetext", "49% original, 51% result")

    link = page.get_by_role("link", name="Download")
    with page.expect_download() as started:
        link.click()
    download = started.value
    assert download.suggested_filename == "bottle-remove-background.png"
    downloaded = decode(Path(download.path()).read_bytes())
    assert (downloaded.format, downloaded.mode, downloaded.size) == ("PNG", "RGBA", (512, 384))

    watch.assert_clean(server.url)
    # Off every control, so the picture shows no hover state.
    page.mouse.move(0, VIEWPORT["height"] - 1)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT)


def test_a_bad_key_shows_the_api_error(server: LiveServer, page: Page, product_png: Path) -> None:
    watch = PageWatch(page)
    page.goto(f"{server.url}/")

    page.get_by_label("API key").fill("sk_not_a_real_key")
    alert = page.get_by_role("alert")
    # First from the balance lookup, then from the operation itself.
    expect(alert).to_contain_text("API Token not found")
    expect(alert).to_contain_text("invalid_auth_token")
    expect(page.locator("#credits-box")).to_be_hidden()

    page.get_by_label("Choose an image").set_input_files(product_png)
    expect(page.locator("#error")).to_be_empty()
    with page.expect_response(f"{server.url}/v1/remove-background") as answered:
        page.get_by_role("button", name="Remove background").click()
    assert answered.value.status == 401
    expect(alert).to_contain_text("API Token not found")
    expect(alert).to_contain_text("HTTP 401 · invalid_auth_token")
    expect(page.get_by_role("img", name="Result")).to_be_hidden()
    expect(page.get_by_role("button", name="Remove background")).to_be_enabled()
    watch.assert_clean(server.url)


def test_the_key_is_kept_for_the_tab_only_when_asked(server: LiveServer, page: Page) -> None:
    page.goto(f"{server.url}/")
    page.get_by_label("API key").fill("sk_typed")
    page.reload()
    expect(page.get_by_label("API key")).to_have_value("")

    page.get_by_label("API key").fill("sk_kept")
    page.get_by_label("Remember for this tab").check()
    page.reload()
    expect(page.get_by_label("API key")).to_have_value("sk_kept")
    stores = page.evaluate("[localStorage.length, sessionStorage.length]")
    assert stores == [0, 1]


def test_the_page_and_assets_are_served_with_a_strict_policy(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "img-src 'self' blob: data:" in policy
        assert "form-action 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        # Every asset the page names is served from here; nothing points elsewhere.
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(asset.startswith(("/playground/", "#")) for asset in assets)
        for asset in assets:
            if asset.startswith("/"):
                assert http.get(asset).status_code == 200, asset

        script = http.get("/playground/app.js")
        assert "javascript" in script.headers["content-type"]
        again = http.get("/playground/app.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304

        missing = http.get("/playground/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "not_found"
        assert http.get("/playground/%2e%2e/app.py").status_code == 404

        paths = http.get("/openapi.json").json()["paths"]
        assert "/" not in paths
        assert not [path for path in paths if path.startswith("/playground")]

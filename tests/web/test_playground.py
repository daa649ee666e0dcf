"""The web playground, end to end in Debian's headless Chromium driven by Playwright.

Playwright is given the system browser (``executable_path``) and never downloads its own. In CI
(``CI`` set) a missing Chromium or Playwright fails the run; elsewhere those tests skip with the
reason. No test writes a tracked file: the README's screenshot comes from
``python docs/screenshot.py``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.config import Settings
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


class HeldTryOn:
    """A try-on engine double that runs only once released, so the page's progress can be seen
    at each step; it paints a red box where the garment would go and records the mode asked."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.modes: list[str] = []
        self.error: Exception | None = None

    def find_person(self, person: np.ndarray) -> None:
        """Everyone is a person here."""

    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        self.modes.append(mode)
        if not self.release.wait(timeout=60):
            raise TimeoutError("never released")
        if self.error is not None:
            raise self.error
        out = person.copy()
        out[40:100, 30:90] = (200, 20, 20)
        return out


@pytest.fixture
def try_on_server(
    settings: Settings, engines: Engines
) -> Iterator[tuple[LiveServer, Services, HeldTryOn]]:
    engine = HeldTryOn()
    services = Services.create(settings, engines=dataclasses.replace(engines, try_on=engine))
    try:
        with LiveServer.start(create_app(settings, services)) as live:
            yield live, services, engine
    finally:
        engine.release.set()  # a job still held must not outlive the test
        services.close()


@pytest.fixture
def person_and_garment(tmp_path: Path) -> tuple[Path, Path]:
    person = tmp_path / "person.png"
    person.write_bytes(encode(np.full((160, 120, 3), 90, np.uint8)))
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[10:70, 10:70] = (200, 20, 20, 255)  # already cut out: no extraction, 1 credit
    garment = tmp_path / "shirt.png"
    garment.write_bytes(encode(rgba))
    return person, garment


def start_try_on(page: Page, url: str, key: str, person: Path, garment: Path) -> str:
    """Fill in a try-on in the page and submit it; the id of the job the API answered."""
    page.goto(f"{url}/")
    page.get_by_label("API key").fill(key)
    expect(page.get_by_role("status", name="Credits left")).to_have_text("10")
    page.get_by_label("Choose an image").set_input_files(person)
    page.get_by_role("radio", name="Try-on").check()
    expect(page.locator("#image-label")).to_have_text("2 Person")
    page.get_by_label("Choose a garment image").set_input_files(garment)
    expect(page.locator("#garment-text")).to_contain_text("shirt.png")
    expect(page.get_by_role("img", name="Garment")).to_be_visible()
    page.get_by_role("combobox", name=re.compile("^Garment")).select_option("upper")
    with page.expect_response(f"{url}/v1/try-on") as answered:
        page.get_by_role("button", name="Try on").click()
    # Submitted without waiting: the page gets the job at once and polls it.
    assert answered.value.status == 202
    job = answered.value.json()
    assert job["status"] == "pending"
    return str(job["job_id"])


def test_try_on_in_the_browser_shows_the_job_until_its_result(
    try_on_server: tuple[LiveServer, Services, HeldTryOn],
    page: Page,
    person_and_garment: tuple[Path, Path],
) -> None:
    server, services, engine = try_on_server
    account = make_account(services, credits=10)
    watch = PageWatch(page)

    job_id = start_try_on(page, server.url, account.key, *person_and_garment)

    job = page.get_by_role("region", name=re.compile("^Job"))
    expect(job.locator("code")).to_have_text(job_id)
    expect(job.locator('[aria-current="step"]')).to_have_text("Running")
    expect(page.locator("#status")).to_contain_text("Running…")
    expect(page.get_by_role("button", name="Cancel job")).to_be_visible()
    polls = [url for url in watch.urls if url.endswith(f"/v1/try-on/job/{job_id}")]
    assert polls, "the page never asked for the job's status"
    assert engine.modes == ["upper"]

    engine.release.set()
    result = page.get_by_role("img", name="Result")
    expect(result).to_be_visible()
    assert result.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [120, 160]
    expect(page.locator("#meta")).to_have_text(re.compile(r"^JPG · 120 × 160 px · "))
    expect(job.locator("li.done")).to_have_count(3)
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(page.locator("#charge")).to_have_text("Charged 1 credit · 9 left")
    expect(page.get_by_role("status", name="Credits left")).to_have_text("9")
    expect(page.locator("#status")).to_contain_text("Done in")

    with page.expect_download() as started:
        page.get_by_role("link", name="Download").click()
    assert started.value.suggested_filename == "person-try-on.jpg"
    dressed = decode(Path(started.value.path()).read_bytes())
    assert (dressed.format, dressed.size) == ("JPEG", (120, 160))
    red = np.asarray(dressed.convert("RGB"))[70, 60].astype(int)
    assert red[0] > 150 and red[1] < 80 and red[2] < 80
    watch.assert_clean(server.url)


def test_cancelling_a_try_on_in_the_browser_refunds_it(
    try_on_server: tuple[LiveServer, Services, HeldTryOn],
    page: Page,
    person_and_garment: tuple[Path, Path],
) -> None:
    server, services, engine = try_on_server
    account = make_account(services, credits=10)
    watch = PageWatch(page)
    job_id = start_try_on(page, server.url, account.key, *person_and_garment)
    job = page.get_by_role("region", name=re.compile("^Job"))
    expect(job.locator('[aria-current="step"]')).to_have_text("Running")

    with page.expect_response(f"{server.url}/v1/try-on/job/{job_id}/cancel") as answered:
        page.get_by_role("button", name="Cancel job").click()
    assert answered.value.status == 200

    expect(page.locator("#status")).to_have_text("Cancelled: nothing was charged.")
    expect(page.get_by_role("status", name="Credits left")).to_have_text("10")
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(page.get_by_role("img", name="Result")).to_be_hidden()
    expect(page.locator("#error")).to_be_empty()
    expect(page.get_by_role("button", name="Try on")).to_be_enabled()
    status = httpx.get(f"{server.url}/v1/try-on/job/{job_id}", headers={"X-API-KEY": account.key})
    assert status.json()["error"]["error_code"] == "job_cancelled"
    watch.assert_clean(server.url)


def test_a_failed_try_on_shows_the_job_error_and_refunds(
    try_on_server: tuple[LiveServer, Services, HeldTryOn],
    page: Page,
    person_and_garment: tuple[Path, Path],
) -> None:
    server, services, engine = try_on_server
    engine.error = RuntimeError("the engine broke")
    engine.release.set()
    account = make_account(services, credits=10)
    watch = PageWatch(page)
    start_try_on(page, server.url, account.key, *person_and_garment)

    alert = page.get_by_role("alert")
    # The job document's error, as the API words it; the cause stays in the server log.
    expect(alert).to_contain_text("unexpected_error")
    assert "the engine broke" not in alert.inner_text()
    expect(page.get_by_role("status", name="Credits left")).to_have_text("10")
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(page.get_by_role("img", name="Result")).to_be_hidden()
    expect(page.get_by_role("button", name="Try on")).to_be_enabled()
    watch.assert_clean(server.url)

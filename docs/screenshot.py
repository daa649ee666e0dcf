"""Take the README's playground screenshot: ``python docs/screenshot.py [--output PATH]``.

Serves Retouch in this process on a loopback port, with a throwaway SQLite database and data
directory, removes the background of the browser tests' synthetic bottle in Debian's Chromium
(the same browser, flags and viewport as ``tests/web/test_playground.py``) and saves the page.
No test writes ``docs/playground.png``: run this when the playground's look changes and commit
the picture. Needs the test dependencies (``pip install -e ".[test]"``) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The browser tests' helpers (image, live server, browser flags) live in the tests package.
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.config import Settings
from retouch.db import migrate
from tests.utils.factories import make_account
from tests.utils.images import composite, encode
from tests.utils.server import LiveServer
from tests.web.test_playground import CHROMIUM, CHROMIUM_ARGS, VIEWPORT


def take(output: Path, workdir: Path) -> None:
    data = workdir / "data"
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'retouch.db'}")
    data.mkdir()
    migrate.upgrade(settings.sqlalchemy_url)
    pixels, _mask = composite("blobs", seed=3)
    image = workdir / "bottle.png"
    image.write_bytes(encode(pixels))
    services = Services.create(settings, engines=Engines.load(settings))
    try:
        account = make_account(services, credits=10)
        with LiveServer.start(create_app(settings, services)) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            page.goto(f"{server.url}/")
            page.get_by_label("API key").fill(account.key)
            expect(page.get_by_role("status", name="Credits left")).to_have_text("10")
            page.get_by_label("Choose an image").set_input_files(image)
            page.get_by_role("button", name="Remove background").click()
            expect(page.get_by_role("img", name="Result")).to_be_visible()
            expect(page.get_by_role("status", name="Credits left")).to_have_text("9")
            # Off every control, so the picture shows no hover state.
            page.mouse.move(0, VIEWPORT["height"] - 1)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=output)
            browser.close()
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "playground.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        take(args.output, Path(workdir))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

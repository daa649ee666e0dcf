"""/docs in Debian's headless Chromium: Swagger UI renders the API from this server alone, and
the Content-Security-Policy it shares with the playground refuses nothing it needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.utils.server import LiveServer

# The playground's browser, page and watcher, so both suites launch Chromium the same way.
from tests.web.test_playground import PageWatch, browser, page  # noqa: F401

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.mark.slow
def test_swagger_ui_renders_offline_under_the_policy(server: LiveServer, page: Page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    watch = PageWatch(page)
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Retouch")
    operation = page.locator(".opblock-summary-path", has_text="/v1/remove-background")
    expect(operation.first).to_be_visible()
    # Opening an operation renders its parameters and schemas (React, styles, icons).
    operation.first.click()
    expect(page.get_by_role("button", name="Try it out").first).to_be_visible()
    assert violations == []
    watch.assert_clean(server.url)

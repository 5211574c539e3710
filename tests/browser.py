"""Drive Flame's real page in Debian's Chromium through Playwright's async API.

Playwright cannot download browsers here, so the system Chromium is launched by path. A missing
browser is a test failure, never a skip: `make browser` installs it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Page,
    expect,
)

from flame.devtools.browser import chromium_missing
from flame.devtools.browser import launch_chromium as launch_devtools_chromium
from tests.cluster import PASSWORD

TIMEOUT_MS = 10_000

# Chrome logs every 4xx/5xx answer as a console error; the app expects some (the first
# /ui/api/me before login, a wrong password, an unknown recipient).
EXPECTED_CONSOLE = re.compile(r"^Failed to load resource: the server responded with a status of")

# Runs before any of the page's own scripts, in every frame: records CSP violations.
RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push({
    directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample,
  });
});
"""


def require_chromium() -> None:
    missing = chromium_missing()
    if missing is not None:
        pytest.fail(f"{missing} The browser tests need it.", pytrace=False)


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with launch_devtools_chromium() as browser:
        yield browser


@dataclass
class Tab:
    """One user's page in its own browser context (own cookies), with everything it reported."""

    name: str
    url: str
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)
    console: list[ConsoleMessage] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, browser: Browser, name: str, url: str) -> Tab:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(RECORD_CSP)
        page = await context.new_page()
        tab = cls(name, url, context, page)
        page.on("dialog", tab._on_dialog)
        page.on("console", tab._on_console)
        page.on("pageerror", tab._on_page_error)
        return tab

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(message)

    def _on_page_error(self, error: Error) -> None:
        self.page_errors.append(f"{error.name}: {error.message}")

    async def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    async def goto(self, path: str = "/") -> Any:
        return await self.page.goto(self.url + path)

    async def login(self, password: str = PASSWORD) -> None:
        """Through the login form, as a person would."""
        page = self.page
        await expect(page.locator("#login-form")).to_be_visible(timeout=TIMEOUT_MS)
        await page.locator("#password").fill(password)
        await page.locator("#login-button").click()

    async def open_session(self) -> None:
        await self.goto("/")
        await self.login()
        await expect(self.page.locator("#me-name")).to_have_text(self.name, timeout=TIMEOUT_MS)

    async def open_conversation(self, peer: str) -> None:
        await self.page.locator(f'[data-contact="{peer}"]').click()
        await expect(self.page.locator(f'#conversation[data-peer="{peer}"]')).to_be_visible(
            timeout=TIMEOUT_MS
        )

    async def csp_violations(self) -> list[dict[str, Any]]:
        violations: list[dict[str, Any]] = await self.page.evaluate("window.__cspViolations")
        return violations

    def console_errors(self) -> list[str]:
        return [
            m.text for m in self.console if m.type == "error" and not EXPECTED_CONSOLE.match(m.text)
        ]

    async def assert_clean(self) -> None:
        """No alert/confirm, no uncaught exception, no console error, no CSP violation."""
        assert self.dialogs == [], f"{self.name}: dialogs opened: {self.dialogs}"
        assert self.page_errors == [], f"{self.name}: uncaught errors: {self.page_errors}"
        assert self.console_errors() == [], f"{self.name}: console: {self.console_errors()}"
        assert await self.csp_violations() == [], f"{self.name}: CSP violations"

    async def close(self) -> None:
        await self.context.close()

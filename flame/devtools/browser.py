"""Debian's Chromium under Playwright, for the tools that look at the page (`make screenshots`)
and the browser tests. Playwright cannot download browsers here, so the system's is launched by
path (CHROMIUM_PATH, or /usr/bin/chromium): `make browser` installs it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from flame.devtools.ui import ToolFailed

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    return os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def chromium_missing() -> str | None:
    """Why Chromium cannot be launched, or None when it can."""
    path = chromium_path()
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return None
    return (
        f"Chromium is not installed at {path}. Run `make browser` (or `sudo apt-get install "
        "chromium`), or set CHROMIUM_PATH to its path."
    )


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Any]:
    """A headless Chromium (Playwright's Browser); ToolFailed when there is none."""
    missing = chromium_missing()
    if missing is not None:
        raise ToolFailed(missing)
    from playwright.async_api import async_playwright  # a dev tool's dependency, not Flame's

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()

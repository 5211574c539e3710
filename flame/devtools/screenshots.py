"""`make screenshots`: the main views of the page, wide (1280 px) and on a phone (390 px), as PNG
files, so anyone can look at the UI without clicking through it. A fresh demo cluster (a
directory and alice, bob and carol as `flame serve` processes, in a temporary folder) is given a
little history through the UI API, then real Chromium logs in as alice and visits each view.

The folder it writes (`screenshots/` by default) is not committed. A view that logs an error in
the page fails the tool."""

from __future__ import annotations

import asyncio
import io
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from flame.devtools.browser import launch_chromium
from flame.devtools.cluster import Cluster, env_of
from flame.devtools.demo import USERS
from flame.devtools.ui import ToolFailed, UiClient

VIEWPORTS = (("wide", 1280, 800), ("phone", 390, 844))
TIMEOUT_MS = 15_000
# The page's answers to a login before it (401) are expected; anything else in the console is not.
EXPECTED_CONSOLE = re.compile(r"^Failed to load resource: the server responded with a status of")
# Quick presence, so that everyone shows online by the time the pictures are taken.
QUICK = env_of({"daemon.presence_interval_s": 1.0, "daemon.directory_sync_s": 1.0})
ALL_PICTURES_LOADED = """() => [...document.querySelectorAll('#conversation img.file-thumb')]
  .every((p) => p.complete && p.naturalWidth > 0)"""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose page the views are of: their UI address and password."""

    name: str
    url: str
    password: str


def picture(width: int, height: int) -> bytes:
    """A sunset of sorts: a gradient, as a PNG."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [(230 - y // 4, 90 + x // 12, 60 + y // 3) for y in range(height) for x in range(width)]
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def seed(ui: dict[str, UiClient]) -> None:
    """Profiles, a conversation between alice and bob with a link, a picture and a document with
    its caption, and two unread messages from carol."""
    profiles = {
        "alice": ("Alice Liddell", "Chief Executive", "London"),
        "bob": ("Bob Marley", "Chief Financial Officer", "Kingston"),
        "carol": ("Carol Danvers", "Head of Legal", "Boston"),
    }
    for name, (display_name, position, location) in profiles.items():
        fields = {"display_name": display_name, "position": position, "location": location}
        status, body = await ui[name].put("/ui/api/profile", fields)
        if status != 200:
            raise ToolFailed(f"{name}: the profile was refused: {body}")
    alice, bob, carol = ui["alice"], ui["bob"], ui["carol"]
    await bob.send("alice", "Morning! The Q3 numbers are in.")
    await alice.send("bob", "Great, send them over before the board meeting.")
    await bob.send_file("alice", "site visit.png", picture(960, 640), "image/png")
    await bob.send_file(
        "alice",
        "Q3 financial report for the board - final version (signed).docx",
        b"PK\x03\x04" + bytes(20_000),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        caption="Signed copy. The slides are at https://example.com/q3-plan",
    )
    await alice.send("bob", "Thanks. I will walk the board through the plan at 3 pm.")
    await carol.send("alice", "Can we talk about the contract before the meeting?")
    await carol.send("alice", "It needs your signature today.")


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Poll `check` (the tools read daemons only through their UI API) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise ToolFailed(f"{what} did not happen within {timeout_s:.0f} s.")
        await asyncio.sleep(0.1)


async def delivered(ui: UiClient, peer: str, count: int) -> bool:
    """`peer` sent `count` messages or more to `ui`'s user, all stored there."""
    return len([m for m in await ui.messages(peer) if m["direction"] == "in"]) >= count


async def capture(browser: Any, viewer: Viewer, out: Path) -> list[Path]:
    """Every view, at every width, as out/<width>/<nn>-<view>.png. Returns the files."""
    from playwright.async_api import expect

    written: list[Path] = []
    problems: list[str] = []
    for label, width, height in VIEWPORTS:
        folder = out / f"{label}-{width}"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):  # the last run's
            old.unlink()
        context = await browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(f"{error.name}: {error.message}"))
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not EXPECTED_CONSOLE.match(m.text)
                else None
            ),
        )

        taken: list[Path] = []

        async def shot(
            name: str, folder: Path = folder, page: Any = page, taken: list[Path] = taken
        ) -> None:
            path = folder / f"{len(taken) + 1:02d}-{name}.png"
            await page.screenshot(path=str(path))
            taken.append(path)

        async def show(route: str, ready: str, page: Any = page) -> None:
            await page.evaluate(f"location.hash = {route!r}")
            await expect(page.locator(ready).first).to_be_visible()

        await page.goto(f"{viewer.url}/")
        await expect(page.locator("#login-title")).to_contain_text(viewer.name)
        await shot("login")
        await page.locator("#password").fill(viewer.password)
        await page.locator("#login-button").click()
        await expect(page.locator("#contact-list .contact").first).to_be_visible()
        await show("#/", "#contact-list")
        await shot("contacts")
        await show("#/c/bob", "#conversation .file-card")
        await page.wait_for_function(ALL_PICTURES_LOADED)
        await shot("conversation")
        await page.locator("#conversation img.file-thumb").first.click()
        await expect(page.locator("#lightbox")).to_be_visible()
        await shot("lightbox")
        await page.keyboard.press("Escape")
        await page.keyboard.press("Control+k")
        await expect(page.locator("#switcher")).to_be_visible()
        await shot("quick-switcher")
        await page.keyboard.press("Escape")
        await page.locator("#block-toggle").click()
        await expect(page.locator("#block-confirm")).to_be_visible()
        await shot("block-confirm")
        await page.keyboard.press("Escape")
        await show("#/profile/bob", "#profile-safety .safety-group")
        await shot("profile")
        await show("#/settings", "#settings")
        await shot("settings")
        await show("#/search/board", "#search-messages .search-message")
        await shot("search")
        await context.close()
        written += taken
    if problems:
        raise ToolFailed(f"the page reported errors while being photographed: {problems}")
    return written


async def run_screenshots(out: Path) -> int:
    out = out.resolve()
    # A short root: the directory's admin socket path must fit AF_UNIX's limit.
    with tempfile.TemporaryDirectory(prefix="flame-") as root:
        cluster = Cluster(Path(root))
        try:
            await cluster.start_directory_process(QUICK)
            for name in USERS:
                await cluster.add_process(name, QUICK)
            ui = {name: await node.login() for name, node in cluster.nodes.items()}
            await ui["alice"].wait_online({"bob", "carol"}, timeout_s=60)
            await ui["bob"].wait_online({"alice"}, timeout_s=60)
            await seed(ui)
            await wait_until(
                "bob's messages reaching alice", lambda: delivered(ui["alice"], "bob", 3), 60
            )
            await wait_until(
                "carol's messages reaching alice", lambda: delivered(ui["alice"], "carol", 2), 60
            )
            alice = cluster.nodes["alice"]
            async with launch_chromium() as browser:
                written = await capture(browser, Viewer("alice", alice.ui_url, alice.password), out)
        finally:
            await cluster.close()
    for path in written:
        print(path)
    print(f"{len(written)} screenshots in {out}")
    return 0

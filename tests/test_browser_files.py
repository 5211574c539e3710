"""Files in real Chromium against real daemons: attach a picture and watch it travel (progress on
both sides, then inline in both UIs), an SVG with script that is only ever a download, drop and
paste, and declining. No sleeps: every wait is an auto-waiting `expect` with a timeout."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.async_api import FilePayload, expect

from tests.browser import TIMEOUT_MS, Tab
from tests.cluster import Cluster, services_of
from tests.files_helpers import MIB, png_bytes
from tests.test_browser import OpenTab, browser, tabs

pytestmark = pytest.mark.browser
__all__ = ["browser", "tabs"]  # fixtures, used by name

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>window.pwned = 1</script></svg>'


def payload(name: str, mime_type: str, data: bytes) -> FilePayload:
    return FilePayload(name=name, mimeType=mime_type, buffer=data)


def card(tab: Tab, name: str) -> Any:
    """The file card whose name is exactly `name`, in the open conversation."""
    return tab.page.locator("#conversation .file-card").filter(
        has=tab.page.locator(".file-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


async def open_both(tabs: OpenTab) -> tuple[Tab, Tab]:
    alice, bob = await tabs("alice"), await tabs("bob")
    for tab, peer in ((alice, "bob"), (bob, "alice")):
        await tab.open_session()
        await tab.open_conversation(peer)
    return alice, bob


async def test_an_attached_picture_shows_progress_then_inline_in_both_uis(
    trio: Cluster, tabs: OpenTab
) -> None:
    files = services_of(trio.daemons["alice"]).ctx.settings.files
    files.chunk_bytes = 256 * 1024
    files.send_rate_bytes_s = 2 * MIB  # about two seconds on the way: progress can be seen
    picture = png_bytes(extra=4 * MIB)
    alice, bob = await open_both(tabs)

    await alice.page.set_input_files(
        "#file-input",
        files=[payload("team photo.png", "image/png", picture)],
    )
    theirs, mine = card(bob, "team photo.png"), card(alice, "team photo.png")

    async def shows_progress(item: Any, action: str) -> None:
        progress = item.locator(".file-progress")
        await expect(progress).to_be_visible(timeout=TIMEOUT_MS)
        await expect(progress.locator("progress")).to_have_attribute("max", str(len(picture)))
        await expect(progress.locator(".file-progress-text")).to_have_text(
            re.compile(r"B of 4\.\d MB"), timeout=TIMEOUT_MS
        )
        await expect(item.locator(".file-action")).to_have_text(action)

    # Both sides at once: the picture is on its way for about two seconds.
    await asyncio.gather(shows_progress(theirs, "Decline"), shows_progress(mine, "Cancel"))

    for tab, item in ((bob, theirs), (alice, mine)):
        done = tab.page.locator('#conversation .file-card[data-state="complete"]')
        await expect(done).to_have_count(1, timeout=4 * TIMEOUT_MS)
        thumb = item.locator("img.file-thumb")
        await expect(thumb).to_be_visible(timeout=TIMEOUT_MS)
        await expect(thumb).to_have_attribute("alt", "team photo.png")
        await tab.page.wait_for_function(
            "() => { const i = document.querySelector('img.file-thumb');"
            " return i && i.complete && i.naturalWidth === 1; }",
            timeout=TIMEOUT_MS,
        )
        await expect(item.locator(".file-progress")).to_be_hidden()
    await expect(card(bob, "team photo.png").locator(".file-status")).to_have_text(
        "Received and verified"
    )

    # The thumbnail opens larger.
    await bob.page.locator("img.file-thumb").click()
    lightbox = bob.page.locator("#lightbox")
    await expect(lightbox).to_be_visible(timeout=TIMEOUT_MS)
    await expect(lightbox.locator("img")).to_have_attribute("alt", "team photo.png")
    await bob.page.keyboard.press("Escape")
    await expect(lightbox).to_be_hidden()
    # The contact list shows what arrived.
    await expect(bob.page.locator('[data-contact="alice"] .contact-preview')).to_have_text(
        "File: team photo.png"
    )
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_an_svg_with_script_is_only_a_download_and_runs_nothing(tabs: OpenTab) -> None:
    alice, bob = await open_both(tabs)
    await alice.page.set_input_files(
        "#file-input", files=[payload("logo.svg", "image/svg+xml", SVG)]
    )
    for tab in (bob, alice):
        item = card(tab, "logo.svg")
        await expect(item).to_have_attribute("data-state", "complete", timeout=TIMEOUT_MS)
        await expect(item.locator("img, svg, object, iframe, embed")).to_have_count(0)
        link = item.locator("a.file-download")
        await expect(link).to_have_attribute("download", "logo.svg")
        # With the page token: a link cannot send a header (docs/UI_API.md, "Rules").
        await expect(link).to_have_attribute(
            "href", re.compile(r"/content\?download=1&token=[A-Za-z0-9_-]{43}$")
        )

    link = card(bob, "logo.svg").locator("a.file-download")
    async with bob.page.expect_download(timeout=TIMEOUT_MS) as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == "logo.svg"
    assert (await download.path()).read_bytes() == SVG

    # Opening the file's address itself downloads it too: it is never rendered.
    url = str(await link.get_attribute("href")).replace("?download=1&", "?")
    page = await bob.context.new_page()
    async with page.expect_download(timeout=TIMEOUT_MS):
        with pytest.raises(Exception, match="Download is starting"):
            await page.goto(bob.url + url)
    await page.close()
    assert await bob.page.evaluate("typeof window.pwned") == "undefined"
    for tab in (alice, bob):
        await tab.assert_clean()


DROP = """([name, type, text]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, { type }));
  const target = document.querySelector('#conversation');
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    target.dispatchEvent(new DragEvent(kind, { dataTransfer: data, bubbles: true, cancelable: true }));
  }
}"""

PASTE = """([name, type, bytes]) => {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(bytes)], name, { type }));
  const composer = document.querySelector('#composer');
  const paste = { clipboardData: data, bubbles: true, cancelable: true };
  composer.dispatchEvent(new ClipboardEvent('paste', paste));
}"""


async def test_files_dropped_or_pasted_are_sent_and_the_recipient_can_decline(
    trio: Cluster, tabs: OpenTab
) -> None:
    alice, bob = await open_both(tabs)
    await alice.page.evaluate(DROP, ["minutes.txt", "text/plain", "We agreed."])
    dropped = card(bob, "minutes.txt")
    await expect(dropped).to_have_attribute("data-state", "complete", timeout=TIMEOUT_MS)
    await expect(dropped.locator(".file-sub")).to_have_text("10 B · Text document")

    await alice.page.evaluate(PASTE, ["image.png", "image/png", list(png_bytes())])
    pasted = card(bob, "image.png")
    await expect(pasted.locator("img.file-thumb")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(alice.page.locator("#composer")).to_have_value("")  # nothing pasted as text

    # A slow file: bob declines it while it arrives; alice's side says so.
    files = services_of(trio.daemons["alice"]).ctx.settings.files
    files.chunk_bytes = 64 * 1024
    files.send_rate_bytes_s = 256 * 1024
    await alice.page.set_input_files(
        "#file-input",
        files=[payload("huge.bin", "", bytes(4 * MIB))],
    )
    arriving = card(bob, "huge.bin")
    await expect(arriving.locator(".file-action")).to_have_text("Decline", timeout=TIMEOUT_MS)
    await arriving.locator(".file-action").click()
    await expect(arriving).to_have_attribute("data-state", "declined", timeout=TIMEOUT_MS)
    await expect(arriving.locator(".file-status")).to_have_text("You declined it")
    theirs = card(alice, "huge.bin")
    await expect(theirs).to_have_attribute("data-state", "declined", timeout=TIMEOUT_MS)
    await expect(theirs.locator(".file-status")).to_have_text("bob declined it")
    await expect(theirs.locator(".file-action")).to_be_hidden()
    for tab in (alice, bob):
        await tab.assert_clean()

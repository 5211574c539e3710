"""A file sent to a group in real Chromium against real daemons (docs/UI_API.md, "Group
files"): attached in the group's composer, its card appears in every member's page, receiving
with progress, then whole; each member downloads exactly the bytes sent. No sleeps: every wait is
an auto-waiting `expect`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import pytest
from playwright.async_api import Browser, FilePayload, expect

from tests.browser import TIMEOUT_MS, Tab, launch_chromium
from tests.cluster import Cluster, eventually, services_of
from tests.e2e.test_groups import membership
from tests.files_helpers import MIB, random_bytes
from tests.social import online_for

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as chromium:
        yield chromium


async def test_a_file_attached_in_a_group_reaches_every_member_with_progress(
    trio: Cluster, browser: Browser
) -> None:
    files = services_of(trio.daemons["alice"]).ctx.settings.files
    files.chunk_bytes = 256 * 1024
    files.send_rate_bytes_s = 2 * MIB  # about two seconds from alice: progress can be seen
    data = random_bytes(4 * MIB, seed=11)
    await online_for(trio, "alice", "bob", "carol")
    alice_node = trio.daemons["alice"]
    gid = (await services_of(alice_node).groups.create("Board", ["bob", "carol"], None)).id
    for name in ("bob", "carol"):
        want = await membership(alice_node, gid)
        await eventually(partial(membership, trio.daemons[name], gid), equals=want)
    tabs: dict[str, Tab] = {}
    for name in ("alice", "bob", "carol"):
        tabs[name] = await Tab.open(browser, name, trio.daemons[name].ui_url)
        await tabs[name].open_session()
        await tabs[name].page.locator("#group-list a", has_text="Board").click()
        await expect(tabs[name].page.locator("#group-title")).to_have_text("Board")

    await tabs["alice"].page.set_input_files(
        "#group-attach-input",
        files=[FilePayload(name="deck.bin", mimeType="application/octet-stream", buffer=data)],
    )
    for name in ("bob", "carol"):
        item = tabs[name].page.locator("#group-messages .group-file", has_text="deck.bin")
        await expect(item).to_be_visible(timeout=TIMEOUT_MS)
        # On its way: its state and a progress bar of the file's size, then whole.
        await expect(item.locator(".group-file-progress")).to_have_attribute("max", str(len(data)))
        await expect(item.locator(".group-file-state")).to_have_attribute(
            "data-file-state", "complete", timeout=4 * TIMEOUT_MS
        )
        await expect(item.locator(".group-file-progress")).to_be_hidden()
        async with tabs[name].page.expect_download(timeout=TIMEOUT_MS) as info:
            await item.locator("a.group-file-download").click()
        download = await info.value
        assert download.suggested_filename == "deck.bin"
        assert (await download.path()).read_bytes() == data
    mine = tabs["alice"].page.locator("#group-messages .group-file", has_text="deck.bin")
    await expect(mine.locator(".group-file-state")).to_have_attribute("data-file-state", "complete")
    await expect(mine.locator("button", has_text="Cancel")).to_be_visible()
    for tab in tabs.values():
        await tab.assert_clean()

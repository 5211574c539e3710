"""Groups in real Chromium against real daemons (docs/UI_API.md, "Groups"): create a group, add a
member, three pages see a message live with "delivered to X of N", search finds it, rename and a
picture, remove a member: their page says so and the composer is gone. No sleeps: every wait is
an auto-waiting `expect`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser import TIMEOUT_MS, Tab, launch_chromium
from tests.cluster import Cluster, services_of
from tests.files_helpers import png_bytes
from tests.social import online_for

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as chromium:
        yield chromium


async def test_a_group_from_creation_to_a_removal(
    trio: Cluster, browser: Browser, tmp_path: Path
) -> None:
    await online_for(trio, "alice", "bob", "carol")
    tabs = {}
    for name in ("alice", "bob", "carol"):
        tabs[name] = await Tab.open(browser, name, trio.daemons[name].ui_url)
        await tabs[name].open_session()
    alice, bob, carol = tabs["alice"], tabs["bob"], tabs["carol"]

    # Create "Board" with bob, as a person would: the form, a name, a member ticked.
    await alice.page.locator("#new-group-link").click()
    await alice.page.locator("#group-name").fill("Board")
    await alice.page.locator('[data-member="bob"]').check()
    await alice.page.locator("#group-create").click()
    await expect(alice.page.locator("#group-title")).to_have_text("Board")
    await expect(alice.page.locator("#group-members")).to_contain_text("2 members")
    # It shows in bob's list beside his contacts, by itself.
    entry = bob.page.locator("#group-list a", has_text="Board")
    await expect(entry).to_be_visible(timeout=TIMEOUT_MS)

    # Add carol from the members panel.
    await alice.page.locator("#group-add-select").select_option("carol")
    await alice.page.locator("#group-add").click()
    await expect(alice.page.locator("#group-members")).to_contain_text("3 members")
    await carol.page.locator("#group-list a", has_text="Board").click()
    await bob.page.locator("#group-list a", has_text="Board").click()
    for tab in (bob, carol):
        await expect(tab.page.locator("#group-members")).to_contain_text("3 members")

    # One message, seen live in the three pages; alice's says who has it.
    await alice.page.locator("#group-composer").fill("Meeting at nine")
    await alice.page.locator("#group-send").click()
    for tab in (alice, bob, carol):
        text = tab.page.locator("#group-messages .message-text", has_text="Meeting at nine")
        await expect(text).to_be_visible(timeout=TIMEOUT_MS)
    delivery = alice.page.locator("#group-messages .group-delivery")
    await expect(delivery).to_have_text(re.compile(r"^Delivered to 2 of 2"), timeout=TIMEOUT_MS)

    # Search finds it among group messages, and opens the group.
    await bob.page.locator("#search-input").fill("nine")
    await bob.page.locator("#search-input").press("Enter")
    hit = bob.page.locator("#search-group-messages a", has_text="Meeting at nine")
    await expect(hit).to_be_visible(timeout=TIMEOUT_MS)
    await hit.click()
    await expect(bob.page.locator("#group-title")).to_have_text("Board")

    # A refusal is readable: bob is not an admin, so he has no add control at all.
    await expect(bob.page.locator("#group-add")).to_have_count(0)

    # Rename it and give it a picture: the others' pages follow.
    await alice.page.locator("#group-rename-input").fill("Board of directors")
    await alice.page.locator("#group-rename").click()
    for tab in (alice, bob, carol):
        await expect(tab.page.locator("#group-title")).to_have_text("Board of directors")
    picture = tmp_path / "board.png"
    picture.write_bytes(png_bytes())
    await alice.page.locator("#group-picture-input").set_input_files(str(picture))
    for tab in (alice, bob):
        image = tab.page.locator("#group-picture img")
        await expect(image).to_have_attribute("src", re.compile(r"/picture\?v="))
        assert await image.evaluate("(img) => img.decode().then(() => img.naturalWidth)") > 0

    # Remove carol: her page says so, and her composer is gone.
    await alice.page.locator('[data-remove="carol"]').click()
    await expect(alice.page.locator("#group-members")).to_contain_text("2 members")
    await expect(carol.page.locator("#group-notice")).to_contain_text(
        "no longer a member", timeout=TIMEOUT_MS
    )
    await expect(carol.page.locator("#group-form")).to_be_hidden()
    await expect(bob.page.locator("#group-members")).to_contain_text("2 members")
    for tab in tabs.values():
        await tab.assert_clean()
        await tab.close()


async def test_a_group_message_notifies_and_busy_mutes_it(trio: Cluster, browser: Browser) -> None:
    """A group message while the group is not open shows a notice; while busy it arrives (the
    group's unread count shows it) but no notice appears (docs/UI_API.md, "Groups")."""
    await online_for(trio, "bob", "alice", "carol")
    alice = trio.daemons["alice"]
    gid = (await services_of(alice).groups.create("Board", ["bob"], None)).id
    bob = await Tab.open(browser, "bob", trio.daemons["bob"].ui_url)
    await bob.open_session()
    entry = bob.page.locator("#group-list a", has_text="Board")
    await expect(entry).to_be_visible(timeout=TIMEOUT_MS)
    await bob.open_conversation("carol")  # the group is not open

    await services_of(alice).groups.send_text(gid, "first")
    toasts = bob.page.locator("#toasts .toast .toast-title")
    await expect(toasts).to_have_text(["New message in Board"], timeout=TIMEOUT_MS)
    await expect(entry.locator(".unread-badge")).to_have_text("1")

    await bob.page.locator("#my-status").select_option("busy")
    await expect(bob.page.locator("#my-status-dot")).to_have_class(re.compile(r"\bstatus-busy\b"))
    await bob.page.locator("#toasts .toast").evaluate_all("els => els.forEach(e => e.remove())")
    await services_of(alice).groups.send_text(gid, "while you are busy")
    await expect(entry.locator(".unread-badge")).to_have_text("2", timeout=TIMEOUT_MS)
    await expect(bob.page.locator("#toasts .toast")).to_have_count(0)
    await bob.assert_clean()

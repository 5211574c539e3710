"""Replies, edits, deletes, reactions and typing in real Chromium against real daemons
(PROTOCOL.md §17, docs/UI_API.md): what one person does to a message in their page is seen in
the other's. No sleeps: every wait is an auto-waiting `expect`."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from playwright.async_api import Browser, Locator, expect

from tests.browser import RECORD_CSP, Tab
from tests.cluster import Cluster, services_of
from tests.social import online_for
from tests.test_browser_social import browser

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # a fixture, used by name

OpenTab = Callable[..., Awaitable[Tab]]


@pytest.fixture
async def tabs(trio: Cluster, browser: Browser) -> AsyncIterator[OpenTab]:
    opened: list[Tab] = []
    await online_for(trio, "alice", "bob")
    await online_for(trio, "bob", "alice")

    async def open_tab(name: str, peer: str | None = None) -> Tab:
        tab = await Tab.open(browser, name, trio.daemons[name].ui_url)
        opened.append(tab)
        await tab.open_session()
        if peer is not None:
            await tab.open_conversation(peer)
        return tab

    yield open_tab
    for tab in opened:
        await tab.close()


def bubble(tab: Tab, text: str) -> Locator:
    """The message of the open conversation whose own text is exactly `text`."""
    exact = re.compile(f"^{re.escape(text)}$")
    return tab.page.locator("#messages > li.message").filter(
        has=tab.page.locator(".message-text", has_text=exact)
    )


async def send(tab: Tab, text: str) -> None:
    composer = tab.page.locator("#composer")
    await composer.fill(text)
    await composer.press("Enter")
    await expect(bubble(tab, text)).to_have_count(1)


async def action(message: Locator, name: str) -> None:
    await message.hover()
    await message.locator(f'[data-action="{name}"]').click()


async def test_a_reply_quotes_its_message_and_a_click_jumps_to_it(tabs: OpenTab) -> None:
    alice, bob = await tabs("alice", "bob"), await tabs("bob", "alice")
    await send(alice, "Shall we meet at the harbour?")
    original = bubble(bob, "Shall we meet at the harbour?")
    await action(original, "reply")
    context = bob.page.locator("#composer-context")
    await expect(context).to_contain_text("Replying to alice")
    await expect(context).to_contain_text("Shall we meet at the harbour?")
    await send(bob, "Yes, at ten.")
    for tab in (alice, bob):
        reply = bubble(tab, "Yes, at ten.")
        await expect(reply.locator(".reply-quote-text")).to_have_text(
            "Shall we meet at the harbour?"
        )
    await expect(context).to_have_count(0)  # replying ends with the send
    await bubble(alice, "Yes, at ten.").locator(".reply-quote").click()
    await expect(bubble(alice, "Shall we meet at the harbour?")).to_have_class(
        re.compile(r"\bis-target\b")
    )
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_the_actions_are_reachable_with_the_keyboard(tabs: OpenTab) -> None:
    alice, bob = await tabs("alice", "bob"), await tabs("bob", "alice")
    await send(alice, "Press Tab to reach me")
    message = bubble(bob, "Press Tab to reach me")
    await message.locator(".message-more").focus()
    await expect(message.locator(".message-actions")).to_be_visible()
    await bob.page.keyboard.press("Shift+Tab")  # back out of it ...
    await message.locator(".message-more").focus()
    await bob.page.keyboard.press("Tab")  # ... and into the toolbar after it
    await expect(message.locator('[data-action="reply"]')).to_be_focused()
    await bob.page.keyboard.press("Enter")
    await expect(bob.page.locator("#composer-context")).to_contain_text("Replying to alice")
    await expect(bob.page.locator("#composer")).to_be_focused()
    await bob.page.keyboard.press("Escape")
    await expect(bob.page.locator("#composer-context")).to_have_count(0)
    await bob.assert_clean()


async def test_a_quote_far_back_in_the_history_opens_the_page_around_it(
    trio: Cluster, tabs: OpenTab
) -> None:
    alice_ui = await trio.ui("alice")
    first = await alice_ui.send("bob", "The very first message")
    for n in range(70):
        await alice_ui.send("bob", f"filler {n}")
    bob = await tabs("bob", "alice")
    await expect(bubble(bob, "filler 69")).to_have_count(1)
    await expect(bubble(bob, "The very first message")).to_have_count(0)  # not on the first page
    bob_ui = await trio.ui("bob")
    status, _ = await bob_ui.post(
        "/ui/api/conversations/alice/messages", {"text": "About that", "reply_to": first["id"]}
    )
    assert status == 201
    reply = bubble(bob, "About that")
    await expect(reply.locator(".reply-quote-text")).to_have_text("The very first message")
    await reply.locator(".reply-quote").click()
    target = bubble(bob, "The very first message")
    await expect(target).to_have_class(re.compile(r"\bis-target\b"))
    await expect(target).to_be_in_viewport()
    await expect(bob.page.locator("#anchor-bar")).to_be_visible()
    await bob.assert_clean()


async def test_arrow_up_edits_the_last_message_and_both_sides_show_it_edited(
    tabs: OpenTab,
) -> None:
    alice, bob = await tabs("alice", "bob"), await tabs("bob", "alice")
    await send(alice, "Budget is 40k")
    await expect(bubble(bob, "Budget is 40k")).to_have_count(1)
    composer = alice.page.locator("#composer")
    await composer.press("ArrowUp")
    await expect(alice.page.locator("#composer-context")).to_contain_text("Editing your message")
    await expect(composer).to_have_value("Budget is 40k")
    await composer.fill("Budget is 45k")
    await composer.press("Enter")
    for tab in (alice, bob):
        edited = bubble(tab, "Budget is 45k")
        await expect(edited.locator(".message-edited")).to_have_text("edited")
    await expect(composer).to_have_value("")
    await bubble(bob, "Budget is 45k").locator(".message-edited").click()
    history = bob.page.locator("#edit-history li .edit-history-text")
    await expect(history).to_have_text(["Budget is 40k", "Budget is 45k"])
    await bob.page.keyboard.press("Escape")
    await expect(bob.page.locator("#edit-history")).to_have_count(0)
    # Esc leaves editing with the draft as it was.
    await composer.fill("a draft")
    await action(bubble(alice, "Budget is 45k"), "edit")
    await expect(composer).to_have_value("Budget is 45k")
    await composer.press("Escape")
    await expect(composer).to_have_value("a draft")
    await expect(bubble(bob, "Budget is 40k")).to_have_count(0)
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_delete_for_everyone_leaves_tombstones_and_delete_for_me_only_here(
    tabs: OpenTab,
) -> None:
    alice, bob = await tabs("alice", "bob"), await tabs("bob", "alice")
    await send(alice, "wrong chat, sorry")
    await send(alice, "keep this one")
    await expect(bubble(bob, "keep this one")).to_have_count(1)
    await action(bubble(alice, "wrong chat, sorry"), "delete")
    await alice.page.locator("#delete-everyone").click()
    for tab in (alice, bob):
        tombstone = tab.page.locator("#messages li.message.deleted")
        await expect(tombstone.locator(".message-tombstone")).to_have_text(
            "This message was deleted."
        )
        await expect(bubble(tab, "wrong chat, sorry")).to_have_count(0)
    await action(bubble(bob, "keep this one"), "delete")
    await expect(bob.page.locator("#delete-everyone")).to_have_count(0)  # not bob's message
    await bob.page.locator("#delete-me").click()
    await expect(bubble(bob, "keep this one")).to_have_count(0)
    await expect(bubble(alice, "keep this one")).to_have_count(1)
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_reactions_toggle_and_any_single_emoji_is_taken(tabs: OpenTab) -> None:
    alice, bob = await tabs("alice", "bob"), await tabs("bob", "alice")
    await send(alice, "We closed the deal")
    await action(bubble(bob, "We closed the deal"), "react")
    await bob.page.locator('.reaction-choice[data-emoji="👍"]').click()
    for tab in (alice, bob):
        chip = bubble(tab, "We closed the deal").locator('.reaction-chip[data-emoji="👍"]')
        await expect(chip.locator(".reaction-count")).to_have_text("1")
    mine = bubble(alice, "We closed the deal").locator('.reaction-chip[data-emoji="👍"]')
    await mine.click()  # alice adds hers
    await expect(mine.locator(".reaction-count")).to_have_text("2")
    await expect(mine).to_have_attribute("aria-pressed", "true")
    theirs = bubble(bob, "We closed the deal").locator('.reaction-chip[data-emoji="👍"]')
    await expect(theirs.locator(".reaction-count")).to_have_text("2")
    await theirs.click()  # bob takes his back
    await expect(mine.locator(".reaction-count")).to_have_text("1")
    await action(bubble(bob, "We closed the deal"), "react")
    picker = bob.page.locator(".reaction-picker")
    await picker.locator("#reaction-input").fill("great")
    await picker.locator("#reaction-input").press("Enter")
    await expect(picker.locator(".reaction-error")).to_have_text("A reaction is a single emoji.")
    await picker.locator("#reaction-input").fill("🎉")
    await picker.locator("#reaction-input").press("Enter")
    party = bubble(alice, "We closed the deal").locator('.reaction-chip[data-emoji="🎉"]')
    await expect(party.locator(".reaction-count")).to_have_text("1")
    await expect(picker).to_have_count(0)
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_a_change_the_peer_refuses_is_said_in_the_conversation(
    trio: Cluster, tabs: OpenTab
) -> None:
    """bob's daemon no longer holds the message (restored from an older copy, say): alice's
    reaction is refused by it, and alice's page says so in words, not codes."""
    alice, bob = await tabs("alice", "bob"), await tabs("bob", "alice")
    await send(alice, "Signed and sent")
    await expect(bubble(bob, "Signed and sent")).to_have_count(1)
    key = await bubble(alice, "Signed and sent").get_attribute("data-id")
    await services_of(trio.daemons["bob"]).ctx.db.execute(
        "DELETE FROM messages WHERE id = ?", (key,)
    )
    await action(bubble(alice, "Signed and sent"), "react")
    await alice.page.locator('.reaction-choice[data-emoji="👍"]').click()
    await expect(alice.page.locator("#composer-error")).to_have_text(
        "Your reaction did not reach bob: bob's daemon refused it: There is no such message in"
        " this conversation."
    )
    # Elsewhere in the page, a refusal is a notice that leads to the conversation.
    await alice.page.locator("#settings-link").click()
    alice_ui = await trio.ui("alice")
    path = f"/ui/api/conversations/bob/messages/{urllib.parse.quote(str(key))}/reactions"
    status, _ = await alice_ui.post(path, {"emoji": "🎉", "on": True})
    assert status == 200
    notice = alice.page.locator('.toast[data-conversation="failed:bob"]')
    await expect(notice.locator(".toast-title")).to_have_text(
        "A change to a message for bob failed"
    )
    await expect(notice.locator(".toast-preview")).to_have_text(
        "bob's daemon refused it: There is no such message in this conversation."
    )
    await notice.locator(".toast-link").click()
    await expect(alice.page.locator("#conversation")).to_have_attribute("data-peer", "bob")
    await alice.assert_clean()


async def test_the_contact_sees_typing_in_the_header_until_the_message_comes(
    tabs: OpenTab,
) -> None:
    alice, bob = await tabs("alice", "bob"), await tabs("bob", "alice")
    indicator = bob.page.locator("#typing-indicator")
    await expect(indicator).to_be_hidden()
    await alice.page.locator("#composer").press_sequentially("On my w")
    await expect(indicator).to_be_visible()
    await expect(indicator).to_have_text("typing…")
    await alice.page.locator("#composer").press_sequentially("ay")
    await alice.page.locator("#composer").press("Enter")
    await expect(bubble(bob, "On my way")).to_have_count(1)
    await expect(indicator).to_be_hidden()
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_on_a_touch_screen_the_actions_are_behind_a_button(
    trio: Cluster, browser: Browser, tabs: OpenTab
) -> None:
    alice = await tabs("alice", "bob")
    await send(alice, "from the desk")
    context = await browser.new_context(
        viewport={"width": 390, "height": 800}, has_touch=True, is_mobile=True
    )
    try:
        await context.add_init_script(RECORD_CSP)
        page = await context.new_page()
        phone = Tab("bob", trio.daemons["bob"].ui_url, context, page)
        await phone.open_session()
        await phone.open_conversation("alice")
        message = bubble(phone, "from the desk")
        more = message.locator(".message-more")
        await expect(more).to_be_visible()
        await expect(message.locator(".message-actions")).to_be_hidden()
        await more.tap()
        await expect(message.locator(".message-actions")).to_be_visible()
        await message.locator('[data-action="react"]').tap()
        await page.locator('.reaction-choice[data-emoji="❤️"]').tap()
        chip = bubble(alice, "from the desk").locator('.reaction-chip[data-emoji="❤️"]')
        await expect(chip.locator(".reaction-count")).to_have_text("1")
        await phone.assert_clean()
    finally:
        await context.close()

"""Profiles, statuses, search and blocking in real Chromium against real daemons: what one person
does in their page is seen in the other's. No sleeps: every wait is an auto-waiting `expect`."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from playwright.async_api import Browser, Locator, expect

from flame.store import sessions as session_store
from tests.browser import TIMEOUT_MS, Tab, launch_chromium
from tests.cluster import Cluster, UiClient, services_of
from tests.social import online_for

pytestmark = pytest.mark.browser

OpenTab = Callable[[str], Awaitable[Tab]]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
async def tabs(trio: Cluster, browser: Browser) -> AsyncIterator[OpenTab]:
    opened: list[Tab] = []
    await online_for(trio, "alice", "bob", "carol")
    await online_for(trio, "bob", "alice")

    async def open_tab(name: str) -> Tab:
        tab = await Tab.open(browser, name, trio.daemons[name].ui_url)
        opened.append(tab)
        await tab.open_session()
        return tab

    yield open_tab
    for tab in opened:
        await tab.close()


async def test_a_profile_edited_on_one_side_shows_on_the_other(tabs: OpenTab) -> None:
    alice, bob = await tabs("alice"), await tabs("bob")
    await alice.page.locator("#settings-link").click()
    await expect(alice.page.locator("#profile-form")).to_be_visible()
    await alice.page.locator("#profile-display-name").fill("Alice Liddell")
    await alice.page.locator("#profile-position").fill("Chief Executive")
    await alice.page.locator("#profile-bio-input").fill("<b>not bold</b>\nsecond line")
    await alice.page.locator("#profile-save").click()
    await expect(alice.page.locator("#profile-saved")).to_be_visible()

    # bob's page changes by itself: the contact list shows the new name.
    name = bob.page.locator('[data-contact="alice"] .contact-name')
    await expect(name).to_have_text("Alice Liddell", timeout=TIMEOUT_MS)
    await bob.goto("/#/profile/alice")
    page = bob.page.locator('#profile[data-user="alice"]')
    await expect(page.locator("#profile-name")).to_have_text("Alice Liddell")
    await expect(page.locator("#profile-position")).to_have_text("Chief Executive")
    await expect(page.locator("#profile-bio")).to_have_text("<b>not bold</b>\nsecond line")
    await expect(page.locator("#profile-bio b")).to_have_count(0)  # text, never markup
    await expect(page.locator("#profile-fingerprint")).to_have_text(re.compile(r"^[0-9a-f ]{20,}$"))
    # The safety number in twelve groups of five digits, to read out (PROTOCOL.md §3.4).
    groups = page.locator("#profile-safety .safety-group")
    await expect(groups).to_have_count(12)
    for group in await groups.all_text_contents():
        assert re.fullmatch(r"[0-9]{5}", group), group
    await expect(page.locator(".status-text")).to_have_text("Online")
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_busy_changes_the_dot_everywhere_and_mutes_notifications(tabs: OpenTab) -> None:
    alice, bob = await tabs("alice"), await tabs("bob")
    contact = bob.page.locator('[data-contact="alice"]')
    await expect(contact.locator(".status-dot")).to_have_class(re.compile(r"\bstatus-online\b"))

    # Not busy: a message from someone whose conversation is closed shows a notice.
    await bob.open_conversation("carol")
    await alice.open_conversation("bob")
    await alice.page.locator("#composer").fill("first")
    await alice.page.locator("#composer").press("Enter")
    await expect(bob.page.locator("#toasts .toast .toast-title")).to_have_text(
        ["New message from alice"]
    )
    await expect(bob.page.locator("#toasts .toast .toast-preview")).to_have_text(["first"])

    await bob.page.locator("#my-status").select_option("busy")
    await expect(bob.page.locator("#my-status-dot")).to_have_class(re.compile(r"\bstatus-busy\b"))
    await expect(alice.page.locator('[data-contact="bob"] .status-dot')).to_have_class(
        re.compile(r"\bstatus-busy\b"), timeout=TIMEOUT_MS
    )
    await expect(alice.page.locator('[data-contact="bob"] .status-text')).to_have_text("Busy")
    await expect(alice.page.locator("#conversation .conv-status .status-text")).to_have_text("Busy")

    # Busy: the message arrives (the preview shows it) but no notice appears.
    await bob.page.locator("#toasts .toast").evaluate_all("els => els.forEach(e => e.remove())")
    await alice.page.locator("#composer").fill("while you are busy")
    await alice.page.locator("#composer").press("Enter")
    preview = contact.locator(".contact-preview")
    await expect(preview).to_have_text("while you are busy", timeout=TIMEOUT_MS)
    await expect(bob.page.locator("#toasts .toast")).to_have_count(0)

    await bob.page.locator("#my-status").select_option("online")
    await expect(alice.page.locator('[data-contact="bob"] .status-text')).to_have_text("Online")
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_search_and_jump_to_the_message(trio: Cluster, tabs: OpenTab) -> None:
    alice = await tabs("alice")
    ui = await trio.ui("alice")
    for n in range(60):
        text = "the pineapple plan" if n == 7 else f"filler message {n}"
        await ui.send("bob", text)

    await alice.page.locator("#search-input").fill("pineapple")
    await alice.page.locator("#search-input").press("Enter")
    hit = alice.page.locator("#search-messages .search-message")
    await expect(hit).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(hit.locator("mark")).to_have_text(["pineapple"])
    await expect(hit.locator(".search-snippet")).to_have_text("the pineapple plan")
    await hit.locator("a").click()

    await expect(alice.page).to_have_url(re.compile(r"#/c/bob/m/"))
    target = alice.page.locator("#conversation .message.is-target")
    await expect(target.locator(".message-text")).to_have_text("the pineapple plan")
    await expect(target).to_be_in_viewport()
    await expect(alice.page.locator("#anchor-bar")).to_be_visible()  # newer ones not loaded
    await alice.page.locator("#jump-to-latest").click()
    await expect(alice.page.locator("#conversation .message-text").last).to_have_text(
        "filler message 59"
    )

    # People are found too, and the filters narrow the messages.
    await alice.page.locator("#search-input").fill("filler")
    await alice.page.locator("#search-input").press("Enter")
    await expect(alice.page.locator("#search-messages .search-message")).to_have_count(30)
    await alice.page.locator("#search-peer").select_option("carol")
    await expect(alice.page.locator("#search-messages .search-message")).to_have_count(0)
    await alice.page.locator("#search-input").fill("car")
    await alice.page.locator("#search-input").press("Enter")
    await expect(
        alice.page.locator('#search-people .search-person[data-user="carol"]')
    ).to_be_visible()
    await alice.assert_clean()


async def test_blocking_asks_first_and_what_they_wrote_meanwhile_never_shows(
    trio: Cluster, tabs: OpenTab
) -> None:
    """Blocking asks first (Esc and Cancel keep things as they are); the banner names the person
    as the page does; their messages stop; after the unblock, what they wrote while blocked is
    not shown (PROTOCOL.md §12.4), what they write next is."""
    alice = await tabs("alice")
    bob_ui = await trio.ui("bob")
    status, _ = await bob_ui.put("/ui/api/profile", {"display_name": "Bob Builder"})
    assert status == 200
    await bob_ui.send("alice", "before the block")
    await alice.open_conversation("bob")
    incoming = alice.page.locator("#conversation .message.in .message-text")
    await expect(incoming).to_have_text(["before the block"])
    await expect(alice.page.locator("#conv-title .conv-title-name")).to_have_text("Bob Builder")

    dialog = alice.page.locator("#block-confirm")
    await alice.page.locator("#block-toggle").click()
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".dialog-title")).to_have_text("Block Bob Builder?")
    await alice.page.keyboard.press("Escape")  # no: nothing changes
    await expect(dialog).to_have_count(0)
    await alice.page.locator("#block-toggle").click()
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    await expect(alice.page.locator("#block-toggle")).to_have_text("Block")
    await expect(alice.page.locator("#composer")).to_be_enabled()

    await alice.page.locator("#block-toggle").click()
    await dialog.get_by_role("button", name="Block").click()
    banner = alice.page.locator("#blocked-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("You blocked Bob Builder.")
    await expect(alice.page.locator("#block-toggle")).to_have_text("Unblock")
    await expect(alice.page.locator("#composer")).to_be_disabled()

    bob_feed = await bob_ui.websocket()
    sent = await bob_ui.send("alice", "after the block")
    bob_delivery = services_of(trio.daemons["bob"]).delivery
    await bob_delivery.deliver_to_peer("alice")  # refused at alice's door
    row = await services_of(trio.daemons["bob"]).ctx.db.fetchone(
        "SELECT attempts FROM outbox WHERE message_id=?", (sent["id"],)
    )
    assert row is not None and row["attempts"] >= 1
    await expect(incoming).to_have_text(["before the block"])
    await alice.page.locator(".brand").click()
    await expect(alice.page.locator('[data-contact="bob"]')).to_have_count(0)  # gone from the list

    await alice.page.locator("#settings-link").click()
    blocked = alice.page.locator('#blocked-list [data-blocked-user="bob"]')
    await expect(blocked).to_be_visible()
    await expect(blocked.locator("a")).to_have_text("Bob Builder")
    await alice.page.locator("#show-blocked").check()
    await expect(alice.page.locator('[data-contact="bob"] .status-text')).to_have_text(
        re.compile("Blocked")
    )
    await alice.page.locator("#show-blocked").uncheck()
    await blocked.get_by_role("button", name="Unblock").click()
    await expect(blocked).to_have_count(0)
    await expect(alice.page.locator('[data-contact="bob"]')).to_have_count(1)
    await alice.open_conversation("bob")

    # bob's daemon retries and is answered: it stops, but alice never sees that message.
    await bob_delivery.deliver_to_peer("alice")
    await bob_feed.wait_for(
        lambda e: e["type"] == "message_state" and e["id"] == sent["id"] and e["state"] == "sent"
    )
    await bob_ui.send("alice", "after the unblock")
    await expect(incoming).to_have_text(["before the block", "after the unblock"])
    await alice.page.reload()
    await expect(incoming).to_have_text(["before the block", "after the unblock"])
    await alice.assert_clean()


async def test_a_display_name_that_could_pass_for_someone_else_shows_the_username(
    trio: Cluster, tabs: OpenTab
) -> None:
    """carol names herself as alice did: bob's list shows both usernames beside the names; the
    conversation's header always shows the username; a name like alice's username gives carol
    away too; unique names stand alone. A name with a bidi control is refused."""
    alice_ui, carol_ui = await trio.ui("alice"), await trio.ui("carol")
    bob = await tabs("bob")
    page = bob.page

    def username_of(name: str) -> Locator:
        return page.locator(f'[data-contact="{name}"] .contact-username')

    async def named(ui: UiClient, name: str, display_name: str) -> None:
        status, _ = await ui.put("/ui/api/profile", {"display_name": display_name})
        assert status == 200
        await expect(page.locator(f'[data-contact="{name}"] .contact-name')).to_have_text(
            display_name, timeout=TIMEOUT_MS
        )

    await named(alice_ui, "alice", "Alice Liddell")
    await expect(username_of("alice")).to_be_hidden()  # nobody else is called that
    await named(carol_ui, "carol", "Alice Liddell")
    for name in ("alice", "carol"):
        await expect(username_of(name)).to_be_visible()
        await expect(username_of(name)).to_have_text(name)

    await bob.open_conversation("carol")
    await expect(page.locator("#conv-title .conv-title-name")).to_have_text("Alice Liddell")
    await expect(page.locator("#conv-username")).to_have_text("carol")
    await expect(page.locator("#conv-username")).to_be_visible()
    await alice_ui.send("bob", "which one am I?")  # a notice names her unmistakably too
    await expect(page.locator("#toasts .toast .toast-title")).to_have_text(
        ["New message from Alice Liddell (alice)"], timeout=TIMEOUT_MS
    )

    await named(carol_ui, "carol", "Carol")  # unique again: the list shows names alone
    await expect(username_of("alice")).to_be_hidden()
    await expect(username_of("carol")).to_be_hidden()
    await expect(page.locator("#conv-username")).to_be_visible()  # the header still does

    await named(carol_ui, "carol", "ALlCE")  # looks like alice's username (l for i)
    await expect(username_of("carol")).to_be_visible()
    await expect(username_of("alice")).to_be_hidden()

    status, refused = await carol_ui.put("/ui/api/profile", {"display_name": "Alice\u202eecilA"})
    assert (status, refused["error"]) == (400, "bad_request")
    assert "display_name" in refused["message"] and "invisible" in refused["message"]
    await bob.assert_clean()


async def test_search_hits_the_filter_and_the_blocked_list_tell_two_alices_apart(
    trio: Cluster, tabs: OpenTab
) -> None:
    """carol names herself as alice did: wherever bob's page names people by display name, the
    username comes with it once two could be confused (search hits in and out, the search's
    person filter, the people he blocked); a name nobody shares stands alone."""
    await online_for(trio, "bob", "carol")
    await online_for(trio, "carol", "bob")
    alice_ui, bob_ui, carol_ui = (
        await trio.ui("alice"),
        await trio.ui("bob"),
        await trio.ui("carol"),
    )
    bob = await tabs("bob")
    page = bob.page
    bob_feed = await bob_ui.websocket()

    async def at_bob(text: str) -> None:
        """Searches find what bob's daemon holds: the message has to be there first."""
        await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["text"] == text)

    async def named(ui: UiClient, name: str) -> None:
        status, _ = await ui.put("/ui/api/profile", {"display_name": "Alice Liddell"})
        assert status == 200
        await expect(page.locator(f'[data-contact="{name}"] .contact-name')).to_have_text(
            "Alice Liddell", timeout=TIMEOUT_MS
        )

    async def search_hits(query: str, count: int) -> list[str]:
        await page.locator("#search-input").fill(query)
        await page.locator("#search-input").press("Enter")
        hits = page.locator("#search-messages .search-message .search-meta strong")
        await expect(hits).to_have_count(count, timeout=TIMEOUT_MS)
        return sorted(await hits.all_text_contents())

    options = page.locator("#search-peer option")
    await named(alice_ui, "alice")
    await alice_ui.send("bob", "the quince plan")
    await at_bob("the quince plan")
    assert await search_hits("quince", 1) == ["Alice Liddell"]  # nobody else is called that
    await expect(options.filter(has_text="Alice Liddell")).to_have_text(["Alice Liddell"])

    await named(carol_ui, "carol")
    await carol_ui.send("bob", "my quince plan")
    await at_bob("my quince plan")
    await bob_ui.send("carol", "which quince plan?")
    assert await search_hits("quince", 3) == [
        "Alice Liddell (alice)",
        "Alice Liddell (carol)",
        "You → Alice Liddell (carol)",
    ]
    await expect(options.filter(has_text="Alice Liddell")).to_have_text(
        ["Alice Liddell (alice)", "Alice Liddell (carol)"]
    )

    status, _ = await bob_ui.post("/ui/api/blocks", {"username": "carol"})
    assert status == 200
    await page.locator("#settings-link").click()
    blocked = page.locator('#blocked-list [data-blocked-user="carol"] a')
    await expect(blocked).to_have_text("Alice Liddell (carol)")
    await bob.assert_clean()


async def test_a_conversation_with_an_older_flame_says_there_is_no_forward_secrecy(
    cluster: Cluster, browser: Browser
) -> None:
    """PROTOCOL.md §14.2: bob's daemon is pinned to version 1; alice's conversation header says
    so, and her conversation with carol (version 2) does not."""
    await cluster.start_directory()
    await cluster.add_user("alice")
    await cluster.add_user("bob", security__max_version=1)
    await cluster.add_user("carol")
    await online_for(cluster, "alice", "bob", "carol")
    tab = await Tab.open(browser, "alice", cluster.daemons["alice"].ui_url)
    try:
        await tab.open_session()
        await tab.goto("/#/c/bob")
        notice = tab.page.locator("#version-notice")
        await expect(notice).to_have_text("no forward secrecy with bob: their Flame is older")
        await expect(notice).to_be_visible()
        await tab.goto("/#/c/carol")
        await expect(tab.page.locator("#conv-title")).to_contain_text("carol")
        await expect(tab.page.locator("#version-notice")).to_be_hidden()
    finally:
        await tab.close()


async def test_the_no_forward_secrecy_notice_appears_while_the_conversation_is_open(
    cluster: Cluster, browser: Browser
) -> None:
    """PROTOCOL.md §14.2, docs/UI_API.md `version`: alice has her conversation with bob open when
    his daemon comes back pinned to version 1; the notice appears without a reload."""
    await cluster.start_directory()
    await cluster.add_user("alice")
    await cluster.add_user("bob")
    await online_for(cluster, "alice", "bob")
    tab = await Tab.open(browser, "alice", cluster.daemons["alice"].ui_url)
    try:
        await tab.open_session()
        await tab.goto("/#/c/bob")
        await expect(tab.page.locator("#conv-title")).to_contain_text("bob")
        notice = tab.page.locator("#version-notice")
        await expect(notice).to_be_hidden()
        await cluster.stop_daemon("bob")
        await cluster.start_daemon("bob", security__max_version=1)
        await expect(notice).to_be_visible(timeout=TIMEOUT_MS)
        await expect(notice).to_have_text("no forward secrecy with bob: their Flame is older")
    finally:
        await tab.close()


async def test_the_session_reset_notice_stays_in_the_conversation(
    cluster: Cluster, browser: Browser
) -> None:
    """PROTOCOL.md §14.9: bob's daemon loses its session with alice (its state is gone, as after a
    restore); her next message does not open, a new session carries it, and both users are told.
    Neither had the conversation open then: each sees the notice when opening it later, and a
    conversation without a reset shows none."""
    await cluster.start_directory()
    for name in ("alice", "bob", "carol"):
        await cluster.add_user(name)
    await online_for(cluster, "alice", "bob", "carol")
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    a_feed, b_feed = await alice.websocket(), await bob.websocket()
    await alice.send("bob", "under the first session")
    await b_feed.wait_for(lambda e: e["type"] == "message")
    bob_sessions = services_of(cluster.daemons["bob"]).sessions
    await session_store.delete_sessions(bob_sessions.ctx.db, "alice")  # bob's state is lost
    bob_sessions.cache.pop("alice", None)
    await alice.send("bob", "sealed again under a new session")
    await b_feed.wait_for(
        lambda e: (
            e["type"] == "message" and e["message"]["text"] == "sealed again under a new session"
        )
    )
    await a_feed.wait_for(lambda e: e == {"type": "session_reset", "username": "bob"})
    for name, peer in (("alice", "bob"), ("bob", "alice")):
        tab = await Tab.open(browser, name, cluster.daemons[name].ui_url)
        try:
            await tab.open_session()
            await tab.goto(f"/#/c/{peer}")
            notice = tab.page.locator("#session-notice")
            await expect(notice).to_be_visible()
            await expect(notice).to_contain_text(f"The secure session with {peer} was reset")
            if name == "alice":
                await tab.goto("/#/c/carol")
                await expect(tab.page.locator("#conv-title")).to_contain_text("carol")
                await expect(tab.page.locator("#session-notice")).to_be_hidden()
        finally:
            await tab.close()


async def test_a_rekey_alarms_the_rekeyed_user_and_a_newcomer_sees_the_key_history(
    trio: Cluster, tabs: OpenTab, caplog: pytest.LogCaptureFixture
) -> None:
    """PROTOCOL.md §17.6: the directory's operator gives bob new keys; bob's page shows the
    alarm above everything, and dave, who meets bob only now, is shown that bob's key is new."""
    bob = await tabs("bob")
    assert trio.directory is not None and trio.directory.store is not None
    code = await trio.directory.store.create_invite(
        "bob", rekey=True, now=int(time.time()), ttl_s=600
    )
    await trio.enroll("bob", invite=code, folder="mallory-as-bob")
    banner = bob.page.locator("#keylog-banner")
    await expect(banner).to_be_visible(timeout=20_000)
    await expect(banner.locator('.keylog-alarm[data-kind="rekeyed"]')).to_contain_text("new keys")

    await trio.add_user("dave")
    dave = await tabs("dave")
    await expect(dave.page.locator('[data-contact="bob"] .key-recent')).to_be_visible()
    await dave.open_conversation("bob")
    await expect(dave.page.locator("#key-history-notice")).to_contain_text(
        "bob's key changed today"
    )
    await dave.goto("/#/profile/bob")
    await expect(dave.page.locator("#profile-key-history li")).to_have_count(2)
    await expect(dave.page.locator('#profile-key-history li[data-kind="rekey"]')).to_be_visible()
    await expect(dave.page.locator("#profile-key-notice")).to_contain_text("Compare the safety")
    await expect(dave.page.locator("#keylog-banner")).to_be_hidden()
    for tab in (bob, dave):
        await tab.assert_clean()
    for record in caplog.get_records("call"):
        if "key log alarm (rekeyed)" in record.getMessage():
            record.expected = True  # bob's daemon's alarm, in the log

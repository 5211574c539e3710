"""What a first-time user meets, in real Chromium against real daemons (issue 12): links, notices
and desktop notifications, the contact list and the keyboard, why messages wait, pictures and
file cards, phone width, the login page, the lightbox and the safety number. No sleeps: every wait
is an auto-waiting `expect` or an event."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import FilePayload, Page, Request, WebSocketRoute, expect

from tests.browser import TIMEOUT_MS, Tab
from tests.cluster import Cluster, eventually, services_of
from tests.files_helpers import Proxy, send_file
from tests.test_browser_social import OpenTab, browser, tabs

pytestmark = pytest.mark.browser
__all__ = ["browser", "tabs"]  # fixtures, used by name


def texts(tab: Tab, direction: str) -> Any:
    return tab.page.locator(f"#conversation .message.{direction} .message-text")


def picture(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


async def box(page: Page, selector: str) -> dict[str, float]:
    found = await page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not on screen"
    return {key: float(found[key]) for key in ("x", "y", "width", "height")}


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


async def test_links_open_in_a_new_tab_without_opener_and_nothing_is_fetched(
    trio: Cluster, tabs: OpenTab
) -> None:
    alice = await tabs("alice")
    outside: list[str] = []

    def record(request: Request) -> None:
        if not request.url.startswith(alice.url):
            outside.append(request.url)

    alice.page.on("request", record)
    await alice.open_conversation("bob")
    bob_ui = await trio.ui("bob")
    await bob_ui.send(
        "alice",
        "Agenda at https://example.com/q3?x=1&y=2. Mail mailto:cfo@example.com "
        "(see http://example.org/a_(b)) but not javascript:alert(1) nor data:text/html,hi",
    )
    bubble = texts(alice, "in").last
    await expect(bubble).to_contain_text("Agenda at")
    links = bubble.locator("a")
    await expect(links).to_have_text(
        ["https://example.com/q3?x=1&y=2", "mailto:cfo@example.com", "http://example.org/a_(b)"]
    )
    for link in await links.all():
        assert await link.get_attribute("target") == "_blank"
        assert await link.get_attribute("rel") == "noopener noreferrer"
    assert await links.nth(0).get_attribute("href") == "https://example.com/q3?x=1&y=2"
    # What is not an http, https or mailto address stays text, as does every link's text.
    await expect(bubble).to_contain_text("not javascript:alert(1) nor data:text/html,hi")
    await expect(bubble.locator('a[href^="javascript"], a[href^="data"]')).to_have_count(0)
    assert outside == [], f"the page fetched something for a link: {outside}"
    await alice.assert_clean()


async def test_a_notice_per_conversation_shows_a_preview_and_never_covers_the_composer(
    trio: Cluster, tabs: OpenTab
) -> None:
    alice = await tabs("alice")
    carol_ui = await trio.ui("carol")
    await alice.open_conversation("bob")
    toasts = alice.page.locator("#toasts .toast")
    for n, text in enumerate(("first", "second", "third"), start=1):
        await carol_ui.send("alice", text)
        await expect(toasts.locator(".toast-title")).to_have_text(
            ["New message from carol" if n == 1 else f"{n} new messages from carol"]
        )
    await expect(toasts).to_have_count(1)  # one for the conversation, not three copies
    await expect(toasts.locator(".toast-preview")).to_have_text(["third"])
    for selector in ("#send", "#composer", "#attach", "#block-toggle"):
        assert not overlap(await box(alice.page, "#toasts .toast"), await box(alice.page, selector))

    await toasts.locator(".toast-close").click()
    await expect(toasts).to_have_count(0)
    await carol_ui.send("alice", "are you there?")
    await expect(toasts.locator(".toast-preview")).to_have_text(["are you there?"])
    await toasts.locator(".toast-link").click()  # opens the conversation, and the notice goes
    await expect(alice.page.locator('#conversation[data-peer="carol"]')).to_be_visible()
    await expect(toasts).to_have_count(0)

    await alice.page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await alice.page.evaluate("location.hash = '#/c/bob'")
    await expect(alice.page.locator('#conversation[data-peer="bob"]')).to_be_visible()
    await carol_ui.send("alice", "on the phone now")
    await expect(toasts.locator(".toast-preview")).to_have_text(["on the phone now"])
    for selector in ("#send", "#composer", "#attach"):
        assert not overlap(await box(alice.page, "#toasts .toast"), await box(alice.page, selector))
    await alice.assert_clean()


# Headless Chromium shows no desktop notices: the page's Notification is a recorder instead,
# standing in for the browser's (never for Flame's code).
RECORD_NOTIFICATIONS = """
window.__asked = 0;
window.__notices = [];
class RecordedNotification {
  static permission = 'default';
  static async requestPermission() {
    window.__asked += 1;
    RecordedNotification.permission = 'granted';
    return 'granted';
  }
  constructor(title, options = {}) {
    Object.assign(this, { title, body: options.body, tag: options.tag, onclick: null });
    window.__notices.push(this);
  }
  close() {}
}
window.Notification = RecordedNotification;
"""


async def notices(page: Page) -> list[dict[str, str]]:
    found: list[dict[str, str]] = await page.evaluate(
        "window.__notices.map(n => ({title: n.title, body: n.body}))"
    )
    return found


async def test_desktop_notifications_are_asked_for_on_a_button_and_a_click_opens_the_chat(
    trio: Cluster, browser: Any
) -> None:
    carol_ui = await trio.ui("carol")
    alice = await Tab.open(browser, "alice", trio.daemons["alice"].ui_url)
    try:
        await alice.context.add_init_script(RECORD_NOTIFICATIONS)
        await alice.open_session()
        page = alice.page
        offer = page.locator("#notify-offer")
        await expect(offer).to_be_visible()
        assert await page.evaluate("window.__asked") == 0  # never on load
        await page.locator("#notify-allow").click()
        await expect(offer).to_be_hidden()
        assert await page.evaluate("window.__asked") == 1

        # Flame in the background: a message from carol is a desktop notice with its text.
        await alice.open_conversation("bob")
        await page.evaluate("document.hasFocus = () => false")
        await carol_ui.send("alice", "the board moved to 3 pm")
        await page.wait_for_function("() => window.__notices.length === 1")
        assert await notices(page) == [{"title": "carol", "body": "the board moved to 3 pm"}]

        # Hidden previews: who wrote, not what.
        await page.locator("#settings-link").click()
        await page.locator("#notify-preview").uncheck()
        await expect(page.locator("#notify-desktop-state")).to_contain_text("are on")
        await carol_ui.send("alice", "confidential numbers")
        await page.wait_for_function("() => window.__notices.length === 2")
        assert (await notices(page))[1] == {"title": "carol", "body": "New message"}

        # A click brings the conversation up; while it is on screen, no notice.
        await page.evaluate("window.__notices[1].onclick()")
        await expect(page.locator('#conversation[data-peer="carol"]')).to_be_visible()
        await carol_ui.send("alice", "seen where it lands")
        await expect(texts(alice, "in").last).to_have_text("seen where it lands")
        # Busy mutes them.
        await page.locator("#my-status").select_option("busy")
        await expect(page.locator("#my-status-dot")).to_have_class(re.compile(r"\bstatus-busy\b"))
        await alice.open_conversation("bob")
        await carol_ui.send("alice", "while you are busy")
        preview = page.locator('[data-contact="carol"] .contact-preview')
        await expect(preview).to_have_text("while you are busy")
        assert len(await notices(page)) == 2
        await expect(page.locator("#toasts .toast")).to_have_count(0)
        await alice.assert_clean()
    finally:
        await alice.close()

    # Another tab: "Not now" keeps the banner away (reloads too); Settings can still ask.
    other = await Tab.open(browser, "alice", trio.daemons["alice"].ui_url)
    try:
        await other.context.add_init_script(RECORD_NOTIFICATIONS)
        await other.open_session()
        page = other.page
        await page.locator("#notify-dismiss").click()
        await expect(page.locator("#notify-offer")).to_be_hidden()
        await page.reload()
        await expect(page.locator("#me-name")).to_have_text("alice")
        await expect(page.locator("#notify-offer")).to_be_hidden()
        await page.locator("#settings-link").click()
        await expect(page.locator("#notify-desktop-state")).to_have_text(
            "Desktop notifications are off."
        )
        assert await page.evaluate("window.__asked") == 0
        await page.locator("#notify-desktop").click()
        await expect(page.locator("#notify-desktop-state")).to_contain_text("are on")
        await expect(page.locator("#notify-desktop")).to_be_hidden()
        assert await page.evaluate("window.__asked") == 1
        await other.assert_clean()
    finally:
        await other.close()


async def contact_order(page: Page) -> list[str]:
    names: list[str] = await page.locator("#contact-list .contact").evaluate_all(
        "els => els.map(e => e.dataset.contact)"
    )
    return names


async def test_contacts_by_most_recent_with_times_and_new_chat_and_the_keyboard(
    trio: Cluster, tabs: OpenTab
) -> None:
    alice = await tabs("alice")
    page = alice.page
    bob_ui, carol_ui = await trio.ui("bob"), await trio.ui("carol")
    await bob_ui.send("alice", "older news")
    await carol_ui.send("alice", "newer news")
    carol = page.locator('[data-contact="carol"]')
    await expect(carol.locator(".contact-preview")).to_have_text("newer news")
    assert await contact_order(page) == ["carol", "bob"]
    await expect(carol.locator(".contact-time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    await expect(carol.locator(".unread-badge")).to_have_text("1")
    await expect(page.locator('[data-contact="bob"] .unread-badge')).to_have_text("1")

    await alice.open_conversation("bob")
    await page.locator("#composer").fill("newest, from me")
    await page.locator("#composer").press("Enter")
    await expect(page.locator('[data-contact="bob"] .contact-preview')).to_have_text(
        "You: newest, from me"
    )
    assert await contact_order(page) == ["bob", "carol"]

    # Alt+↓ and Alt+↑ walk the list, from the composer too.
    await page.locator("#composer").press("Alt+ArrowDown")
    await expect(page).to_have_url(re.compile(r"#/c/carol$"))
    await page.keyboard.press("Alt+ArrowUp")
    await expect(page).to_have_url(re.compile(r"#/c/bob$"))

    # Ctrl+K: the quick switcher narrows as one types; Enter opens.
    switcher = page.locator("#switcher")
    await page.keyboard.press("Control+k")
    await expect(switcher).to_be_visible()
    await page.locator("#switcher-input").fill("car")
    await expect(switcher.locator(".switcher-option")).to_have_count(1)
    await page.keyboard.press("Enter")
    await expect(switcher).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"#/c/carol$"))

    # "/" types a slash in the composer, and opens the switcher elsewhere; Esc closes it.
    await page.locator("#composer").press("/")
    await expect(page.locator("#composer")).to_have_value("/")
    await expect(switcher).to_have_count(0)
    await page.locator(".message-scroll").focus()
    await page.keyboard.press("/")
    await expect(switcher).to_be_visible()
    await page.keyboard.press("ArrowDown")
    await expect(switcher.locator('.switcher-option[aria-selected="true"]')).to_have_attribute(
        "data-contact", "carol"
    )
    await page.keyboard.press("Escape")
    await expect(switcher).to_have_count(0)

    # New chat: anyone, also someone not in the list yet.
    await page.locator("#new-chat").click()
    await expect(switcher.locator(".dialog-title")).to_have_text("New chat")
    await page.locator("#switcher-input").fill("dave")
    await expect(switcher.locator(".switcher-name")).to_have_text(["Message dave"])
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"#/c/dave$"))
    await expect(page.locator("#conversation .conv-status .status-text")).to_have_text(
        "Not in your contacts"
    )
    await alice.assert_clean()


async def test_waiting_messages_say_why_and_the_composer_waits_for_an_unreachable_daemon(
    trio: Cluster, browser: Any
) -> None:
    """carol's daemon stops: alice's message says it goes when carol is online, then that relays
    hold it and since when. Then alice's own daemon cannot be reached (its live feed is cut, as a
    dead daemon's would be, and every reconnection refused): the page says so, the composer waits
    with what was typed, and both come back with the feed."""
    alice_ui = await trio.ui("alice")
    feed = await alice_ui.websocket()
    await trio.stop_daemon("carol")
    await alice_ui.wait_status(feed, "carol", "offline")

    alice = await Tab.open(browser, "alice", trio.daemons["alice"].ui_url)
    routed: list[WebSocketRoute] = []
    cut = False

    async def live_feed(ws: WebSocketRoute) -> None:
        if cut:
            await ws.close(code=1006)  # refused, as by a daemon that is not there
            return
        ws.connect_to_server()
        routed.append(ws)

    try:
        await alice.page.route_web_socket(re.compile(r"/ui/api/ws$"), live_feed)
        await alice.open_session()
        page = alice.page
        await alice.open_conversation("carol")
        await page.locator("#composer").fill("are you back?")
        await page.locator("#composer").press("Enter")
        await expect(texts(alice, "out")).to_have_text(["are you back?"])
        note = page.locator("#pending-note")
        await expect(note).to_have_text(
            "carol is offline: your message will be delivered when they are online."
        )

        # Relays take a copy (bob is online): the note says since when.
        delivery = services_of(trio.daemons["alice"]).delivery
        services_of(trio.daemons["alice"]).ctx.settings.daemon.relay_after_s = 0.0
        db = services_of(trio.daemons["alice"]).ctx.db

        async def tried() -> bool:  # relays take what direct delivery already failed to send
            row = await db.fetchone("SELECT max(attempts) FROM outbox WHERE peer='carol'")
            return row is not None and (row[0] or 0) >= 1

        await eventually(tried, equals=True)
        assert await delivery.deposit_once() == 1
        await expect(
            page.locator('.message.out .message-state[data-state="relayed"]')
        ).to_have_count(1)
        held = re.compile(
            r"^A message is held by relays since \d\d:\d\d, to be delivered when carol"
        )
        await expect(note).to_have_text(held)
        (mine,) = await alice_ui.messages("carol")
        assert mine["state"] == "relayed" and mine["relayed_at"] >= mine["sent_at"]
        await page.reload()  # the time comes from the daemon (the message's relayed_at) too
        await expect(texts(alice, "out")).to_have_text(["are you back?"])
        await expect(note).to_have_text(held)

        # alice's daemon becomes unreachable from the page.
        await page.locator("#composer").fill("typed while it is down")
        cut = True
        for ws in routed:
            await ws.close(code=1006)
        banner = page.locator("#connection-status")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("cannot reach your daemon")
        composer = page.locator("#composer")
        await expect(composer).to_be_disabled()
        await expect(composer).to_have_attribute("placeholder", "Waiting for your Flame daemon…")
        await expect(page.locator("#send")).to_be_disabled()
        await expect(composer).to_have_value("typed while it is down")  # nothing is lost
        await expect(note).to_be_hidden()

        cut = False  # back: the page reconnects by itself
        await expect(banner).to_be_hidden(timeout=3 * TIMEOUT_MS)
        await expect(composer).to_be_enabled()
        await expect(composer).to_have_value("typed while it is down")
        await expect(page.locator("#send")).to_be_enabled()
        await expect(note).to_be_visible()
        await alice.assert_clean()
    finally:
        await alice.close()


ALL_PICTURES_LOADED = """(count) => {
  const pictures = [...document.querySelectorAll('#conversation img.file-thumb')];
  return pictures.length === count && pictures.every((p) => p.complete && p.naturalWidth > 0);
}"""


async def test_pictures_open_at_the_newest_message_and_a_search_hit_shows_them_as_sent(
    trio: Cluster, tabs: OpenTab
) -> None:
    """Pictures load after the conversation scrolled to its end; it stays there. A search hit
    next to one's own delivered pictures shows them sent (not waiting for bob to send them). The
    lightbox downloads the picture, and Esc closes it."""
    alice_ui = await trio.ui("alice")
    await alice_ui.send("bob", "the pineapple plan")
    pictures = [picture(800, 600, (40 * n, 90, 160)) for n in range(4)]
    for n, data in enumerate(pictures):
        await send_file(alice_ui, "bob", f"site {n}.png", data, "image/png")
    await alice_ui.send("bob", "the newest words")
    alice = await tabs("alice")
    page = alice.page
    await alice.open_conversation("bob")
    await page.wait_for_function(ALL_PICTURES_LOADED, arg=4)
    await expect(texts(alice, "out").last).to_have_text("the newest words")
    await expect(texts(alice, "out").last).to_be_in_viewport()
    complete = page.locator('#conversation .file-card[data-state="complete"]')
    await expect(complete).to_have_count(4)  # bob's daemon holds them all

    await page.locator("#search-input").fill("pineapple")
    await page.locator("#search-input").press("Enter")
    await page.locator("#search-messages .search-message a").click()
    await expect(page.locator("#conversation .message.is-target")).to_be_visible()
    cards = page.locator("#conversation .file-card")
    await expect(cards).to_have_count(4)
    await expect(cards.locator(".file-status")).to_have_text(["Sent to bob"] * 4)
    await expect(cards.locator(".file-action")).to_have_count(4)
    for action in await cards.locator(".file-action").all():
        await expect(action).to_be_hidden()  # no Decline, no Cancel
    await expect(cards.locator(".file-progress")).to_have_count(4)
    for progress in await cards.locator(".file-progress").all():
        await expect(progress).to_be_hidden()

    await page.wait_for_function(ALL_PICTURES_LOADED, arg=4)
    await page.locator("#conversation img.file-thumb").first.click()
    lightbox = page.locator("#lightbox")
    await expect(lightbox).to_be_visible()
    download = lightbox.locator("#lightbox-download")
    await expect(download).to_have_attribute("download", "site 0.png")
    async with page.expect_download() as info:
        await download.click()
    saved = await info.value
    assert saved.suggested_filename == "site 0.png"
    assert (await saved.path()).read_bytes() == pictures[0]
    await page.keyboard.press("Escape")
    await expect(lightbox).to_be_hidden()
    await alice.assert_clean()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LONG_NAME = "Quarterly financial report for the board meeting 2024 - final version (signed).docx"


async def within(page: Page, inner: str, outer: str) -> None:
    a, b = await box(page, inner), await box(page, outer)
    assert a["x"] >= b["x"] - 0.5 and a["x"] + a["width"] <= b["x"] + b["width"] + 0.5, (
        f"{inner} {a} runs out of {outer} {b}"
    )


async def fits_the_width(page: Page, width: int) -> None:
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide on a {width} px screen"


async def test_file_cards_fit_with_a_kind_in_words_and_a_caption_and_the_ui_fits_a_phone(
    trio: Cluster, tabs: OpenTab
) -> None:
    alice, bob = await tabs("alice"), await tabs("bob")
    await alice.open_conversation("bob")
    await bob.open_conversation("alice")
    composer = alice.page.locator("#composer")
    await composer.fill("Signed copy for the board, also at https://example.com/q3")
    await alice.page.set_input_files(
        "#file-input",
        files=[FilePayload(name=LONG_NAME, mimeType=DOCX, buffer=b"PK\x03\x04" + bytes(4996))],
    )
    await expect(composer).to_have_value("")  # the text went with the file, as its caption
    for tab in (alice, bob):
        card = tab.page.locator("#conversation .file-card")
        await expect(card).to_have_attribute("data-state", "complete")
        await expect(card.locator(".file-sub")).to_have_text("5.0 KB · Word document")
        await expect(card.locator(".file-name")).to_have_attribute("title", LONG_NAME)
        caption = card.locator(".file-caption")
        await expect(caption).to_have_text(
            "Signed copy for the board, also at https://example.com/q3"
        )
        await expect(caption.locator("a")).to_have_attribute("rel", "noopener noreferrer")
        await within(tab.page, "#conversation .file-card", "#conversation .bubble-file")
        await within(tab.page, "#conversation .file-chip", "#conversation .bubble-file")
    # The caption is found like any message's text.
    await bob.page.locator("#search-input").fill("signed copy")
    await bob.page.locator("#search-input").press("Enter")
    await expect(bob.page.locator("#search-messages .search-snippet")).to_have_text(
        re.compile(r"Signed copy for the board")
    )

    # A phone: nothing is wider than the screen, and every control of the bar is on it.
    page = bob.page
    await page.set_viewport_size({"width": 390, "height": 844})
    views = {
        "#/": "#contact-list",
        "#/c/alice": "#conversation",
        "#/profile/alice": "#profile",
        "#/settings": "#settings",
        "#/search/board": "#search-view",
    }
    for route, view in views.items():
        await page.evaluate(f"location.hash = '{route}'")
        await expect(page.locator(view)).to_be_visible()
        await fits_the_width(page, 390)
        for control in ("#settings-link", "#logout", "#my-status", "#search-input"):
            await within(page, control, "body")
            await expect(page.locator(control)).to_be_in_viewport(ratio=1)
    await page.evaluate("location.hash = '#/c/alice'")
    await expect(page.locator("#conversation .file-card")).to_be_visible()
    await within(page, "#conversation .file-card", "#conversation .bubble-file")
    await within(page, "#conversation .bubble-file", "body")
    await within(page, "#send", "body")
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_the_login_says_whose_it_is_counts_the_throttle_down_and_focuses_the_list(
    cluster: Cluster, browser: Any
) -> None:
    await cluster.start_directory()
    await cluster.add_user("alice", security__login_delay_s=3.0)
    await cluster.add_user("bob")
    alice_ui = await cluster.ui("alice")
    status, _ = await alice_ui.put("/ui/api/profile", {"display_name": "Alice Liddell"})
    assert status == 200
    await (await cluster.ui("bob")).send("alice", "good morning")
    tab = await Tab.open(browser, "alice", cluster.daemons["alice"].ui_url)
    try:
        page = tab.page
        await tab.goto("/")
        await expect(page.locator("#login-title")).to_have_text("Unlock alice's Flame")
        error = page.locator("#login-error")
        for _ in range(2):
            await tab.login("not the password")
            await expect(error).to_have_text("Wrong password.")
        # The third try comes too soon: the page counts the wait down, the button waits too.
        await tab.login("not the password either")
        await expect(error).to_have_text(re.compile(r"^Too many attempts\. Try again in [23] s\.$"))
        await expect(page.locator("#login-button")).to_be_disabled()
        await expect(error).to_have_text("Too many attempts. Try again in 1 s.", timeout=TIMEOUT_MS)
        await expect(error).to_be_hidden(timeout=TIMEOUT_MS)
        await expect(page.locator("#login-button")).to_be_enabled()

        await tab.login()
        await expect(page.locator("#me-name")).to_have_text("Alice Liddell")
        await expect(page.locator("#me-username")).to_have_text("alice")
        # Focus is on the most recent conversation, not lost on the page: Enter opens it.
        focused = page.locator('#contact-list a.contact[data-contact="bob"]')
        await expect(focused).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"#/c/bob$"))
        # The throttle's 429s are expected answers; nothing else went wrong.
        await tab.assert_clean()
    finally:
        await tab.close()


async def test_the_safety_number_is_compared_on_the_profile_and_marked_verified(
    tabs: OpenTab,
) -> None:
    alice = await tabs("alice")
    page = alice.page
    await alice.open_conversation("bob")
    header = page.locator("#conversation .conv-header")
    await expect(header).to_contain_text("Online")
    assert not re.search(r"\d{5}", await header.inner_text())  # not in the header any more
    await expect(page.locator("#conv-verified")).to_be_hidden()

    await page.locator("#conv-profile-link").click()
    groups = page.locator("#profile-safety .safety-group")
    await expect(groups).to_have_count(12)
    digits = await groups.all_text_contents()
    assert all(re.fullmatch(r"\d{5}", group) for group in digits), digits
    await expect(page.locator("#profile-verified")).to_be_hidden()
    await page.locator("#profile-verify").click()
    await expect(page.locator("#profile-verified")).to_be_visible()
    await expect(page.locator("#profile-verify")).to_have_text("Remove the verified mark")

    await page.reload()  # kept by the daemon, not the page
    await expect(page.locator("#profile-verified")).to_be_visible()
    await page.locator("#profile-message").click()
    await expect(page.locator("#conv-verified")).to_be_visible()
    await alice.assert_clean()


async def test_every_status_change_reaches_the_other_side_at_once(
    cluster: Cluster, browser: Any
) -> None:
    """PROTOCOL.md §12.2: alice's daemon reports every change at once (her periodic report is a
    minute away), including one made while the report before it is still on its way through a
    slow link to the directory: bob's page shows each in turn."""
    # Reports last two minutes (the tests' usual two seconds would not outlive alice's interval).
    lasting = {"directory__presence_ttl_s": 120.0}
    directory = await cluster.start_directory(ttl_s=120.0)
    assert directory.listener is not None
    link = await Proxy(target_port=directory.listener.port).start()  # alice to the directory
    try:
        slow = {"presence_interval_s": 60.0, "directory_sync_s": 60.0, **lasting}
        await cluster.add_user("alice", directory_url=link.url, **slow)
        await cluster.add_user("bob", **lasting)
        alice = await Tab.open(browser, "alice", cluster.daemons["alice"].ui_url)
        bob = await Tab.open(browser, "bob", cluster.daemons["bob"].ui_url)
        try:
            await alice.open_session()
            await bob.open_session()
            shown = bob.page.locator('[data-contact="alice"] .status-text')
            await expect(shown).to_have_text("Online")
            choose = alice.page.locator("#my-status")
            for value, label in (("away", "Away"), ("offline", "Offline"), ("online", "Online")):
                await choose.select_option(value)
                await expect(shown).to_have_text(label)

            # A change while the report of the one before waits for the directory's answer.
            link.hold()
            await choose.select_option("busy")
            await link.held.wait()  # the report saying busy is on its way
            await choose.select_option("away")
            await expect(alice.page.locator("#my-status-dot")).to_have_class(
                re.compile(r"\bstatus-away\b")
            )
            link.release()
            await expect(shown).to_have_text("Away")
            for tab in (alice, bob):
                await tab.assert_clean()
        finally:
            await alice.close()
            await bob.close()
    finally:
        await link.close()


async def test_the_users_scroll_up_stays_and_new_messages_wait_behind_a_button(
    trio: Cluster, tabs: OpenTab
) -> None:
    """The conversation follows new messages only while the user is at its end: once they
    scroll up (the wheel here), a message from bob leaves the view where it is and offers
    "New messages ↓", which goes back to the newest one."""
    bob_ui = await trio.ui("bob")
    for n in range(40):
        await bob_ui.send("alice", f"line {n}")
    alice = await tabs("alice")
    page = alice.page
    await alice.open_conversation("bob")
    newest = texts(alice, "in").last
    await expect(newest).to_have_text("line 39")
    await expect(newest).to_be_in_viewport()

    await page.locator(".message-scroll").hover()
    await page.mouse.wheel(0, -3000)
    await expect(newest).not_to_be_in_viewport()
    await bob_ui.send("alice", "while you read back")
    await expect(newest).to_have_text("while you read back")
    await expect(page.locator(".jump-latest")).to_be_visible()
    await expect(newest).not_to_be_in_viewport()  # not pulled down under the reader

    await page.locator(".jump-latest").click()
    await expect(newest).to_be_in_viewport()
    await expect(page.locator(".jump-latest")).to_be_hidden()
    await alice.assert_clean()

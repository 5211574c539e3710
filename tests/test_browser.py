"""The real page in real Chromium against real daemons: login, presence, live chat, XSS, errors.

Each test drives one headless Chromium (one browser context per user, so cookies are separate)
against the `trio` cluster. No sleeps: every wait is an auto-waiting `expect` with a timeout.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Locator, expect

from tests.browser import TIMEOUT_MS, Tab, launch_chromium
from tests.cluster import PASSWORD, Cluster

pytestmark = pytest.mark.browser

OpenTab = Callable[[str], Awaitable[Tab]]
ONLINE = re.compile(r"\bstatus-online\b")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
async def tabs(trio: Cluster, browser: Browser) -> AsyncIterator[OpenTab]:
    """`await tabs("alice")`: a fresh page for alice's daemon. Closed before the cluster stops."""
    opened: list[Tab] = []

    async def open_tab(name: str) -> Tab:
        tab = await Tab.open(browser, name, trio.daemons[name].ui_url)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        await tab.close()


def message(tab: Tab, text: str, direction: str) -> Locator:
    """The one message bubble with exactly this text in the open conversation."""
    return tab.page.locator(f"#conversation .message.{direction}").filter(
        has=tab.page.locator(".message-text", has_text=re.compile(f"^{re.escape(text)}$"))
    )


async def test_two_people_log_in_see_presence_and_chat_live(tabs: OpenTab) -> None:
    alice, bob = await tabs("alice"), await tabs("bob")
    for tab in (alice, bob):
        await tab.goto("/")
        await expect(tab.page).to_have_url(re.compile(r"#/login$"), timeout=TIMEOUT_MS)
        await tab.login(PASSWORD)
        await expect(tab.page.locator("#me-name")).to_have_text(tab.name, timeout=TIMEOUT_MS)
        await expect(tab.page.locator("#login-form")).to_have_count(0)

    for peer in ("bob", "carol"):
        contact = alice.page.locator(f'[data-contact="{peer}"]')
        await expect(contact.locator(".status-dot")).to_have_class(ONLINE, timeout=TIMEOUT_MS)
        await expect(contact.locator(".status-text")).to_have_text("Online")
    await expect(alice.page.locator('[data-contact="alice"]')).to_have_count(0)

    # bob is already looking at alice's conversation; marking the window proves no reload.
    await bob.open_conversation("alice")
    await bob.page.evaluate("window.__sameDocument = true")
    await alice.open_conversation("bob")
    await expect(alice.page).to_have_url(re.compile(r"#/c/bob$"))

    composer = alice.page.locator("#composer")
    await composer.fill("hello")
    await composer.press("Enter")
    await expect(composer).to_have_value("")
    mine = message(alice, "hello", "out")
    await expect(mine).to_have_count(1, timeout=TIMEOUT_MS)

    await expect(message(bob, "hello", "in")).to_have_count(1, timeout=TIMEOUT_MS)
    assert await bob.page.evaluate("window.__sameDocument") is True, "bob's page reloaded"

    await alice.page.evaluate("window.__sameDocument = true")
    await bob.page.locator("#composer").fill("hi alice")
    send = bob.page.locator("#send")
    await expect(send).to_be_enabled()
    await send.click()
    await expect(message(bob, "hi alice", "out")).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(message(alice, "hi alice", "in")).to_have_count(1, timeout=TIMEOUT_MS)
    assert await alice.page.evaluate("window.__sameDocument") is True, "alice's page reloaded"

    # bob has the conversation open: his daemon says delivered, then read; alice sees ticks.
    await expect(mine.locator('.message-state[data-state="read"]')).to_have_count(
        1, timeout=TIMEOUT_MS
    )
    tooltip = await mine.locator(".message-state").get_attribute("title")
    assert tooltip is not None and "Read" in tooltip
    # Oldest first, each exactly once (the send answer and the live event are one message).
    texts = alice.page.locator("#conversation .message .message-text")
    await expect(texts).to_have_text(["hello", "hi alice"])
    await expect(bob.page.locator("#conversation .message .message-text")).to_have_text(
        ["hello", "hi alice"]
    )
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_message_text_is_never_markup(tabs: OpenTab) -> None:
    payloads = ["<img src=x onerror=alert(1)>", "<script>window.pwned=1</script>"]
    alice, bob = await tabs("alice"), await tabs("bob")
    await alice.open_session()
    await bob.open_session()
    await bob.open_conversation("alice")
    await alice.open_conversation("bob")

    composer = alice.page.locator("#composer")
    for text in payloads:
        await composer.fill(text)
        await composer.press("Enter")
        await expect(message(alice, text, "out")).to_have_count(1, timeout=TIMEOUT_MS)

    for tab, direction in ((bob, "in"), (alice, "out")):
        bubbles = tab.page.locator(f"#conversation .message.{direction} .message-text")
        await expect(bubbles).to_have_count(len(payloads), timeout=TIMEOUT_MS)
        assert await bubbles.all_inner_texts() == payloads
        assert await bubbles.evaluate_all("els => els.map(e => e.textContent)") == payloads
        # Text nodes only: not an <img>, a <script> or any other element was parsed.
        assert await bubbles.evaluate_all("els => els.map(e => e.childElementCount)") == [0, 0]
        await expect(tab.page.locator("#conversation .message-text img")).to_have_count(0)
        await expect(tab.page.locator("#conversation script")).to_have_count(0)
        assert await tab.page.evaluate("typeof window.pwned") == "undefined"

    # The contact list's preview is text too.
    preview = bob.page.locator('[data-contact="alice"] .contact-preview')
    await expect(preview).to_have_text(payloads[-1])
    await expect(bob.page.locator("#contact-list img")).to_have_count(0)

    # Reloading renders the stored history, through the same path as a fetched page.
    await bob.page.reload()
    await expect(bob.page.locator("#conversation .message.in .message-text")).to_have_text(
        payloads, timeout=TIMEOUT_MS
    )
    assert await bob.page.evaluate("typeof window.pwned") == "undefined"
    for tab in (alice, bob):
        await tab.assert_clean()


async def test_wrong_password_shows_an_error_then_the_right_one_works(tabs: OpenTab) -> None:
    alice = await tabs("alice")
    page = alice.page
    await alice.goto("/")
    await alice.login("not the password")

    error = page.locator("#login-error")
    await expect(error).to_be_visible(timeout=TIMEOUT_MS)
    await expect(error).to_have_text(re.compile(r"wrong password", re.IGNORECASE))
    await expect(page).to_have_url(re.compile(r"#/login$"))
    await expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#login-button")).to_be_enabled()
    await expect(page.locator("#me-name")).to_have_count(0)
    cookies = await alice.context.cookies()
    assert [c["name"] for c in cookies if c["name"].startswith("flame_session")] == []

    await alice.login(PASSWORD)
    await expect(page.locator("#me-name")).to_have_text("alice", timeout=TIMEOUT_MS)
    await expect(page.locator("#login-form")).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"#/$"))
    port = alice.url.rsplit(":", 1)[1]
    session = [c for c in await alice.context.cookies() if c["name"] == f"flame_session_{port}"]
    assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    await expect(page.locator('[data-contact="bob"]')).to_be_visible()
    await alice.assert_clean()


async def test_sending_to_an_unknown_person_explains_and_keeps_the_text(tabs: OpenTab) -> None:
    alice = await tabs("alice")
    page = alice.page
    await alice.open_session()
    await alice.goto("/#/c/nobody")
    await expect(page.locator('#conversation[data-peer="nobody"]')).to_be_visible(
        timeout=TIMEOUT_MS
    )

    composer = page.locator("#composer")
    await composer.fill("are you there?")
    await composer.press("Enter")
    error = page.locator("#composer-error")
    await expect(error).to_be_visible(timeout=TIMEOUT_MS)
    await expect(error).to_have_text(re.compile(r"nobody|unknown|no user", re.IGNORECASE))
    await expect(composer).to_have_value("are you there?")  # given back, not lost
    await expect(page.locator("#conversation .message")).to_have_count(0)
    await expect(page.locator("#conversation .status-text")).to_have_text(
        re.compile(r"not in your contacts", re.IGNORECASE)
    )

    # Still working: another conversation opens and sends.
    await alice.open_conversation("bob")
    await composer.fill("still here")
    await page.locator("#send").click()
    sent = message(alice, "still here", "out")
    await expect(
        sent.locator('.message-state[data-state="delivered"], .message-state[data-state="read"]')
    ).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(page.locator("#composer-error")).to_be_hidden()
    await alice.assert_clean()


async def test_conversation_page_renders_under_a_strict_csp(tabs: OpenTab, tmp_path: Path) -> None:
    alice = await tabs("alice")
    page = alice.page
    response = await alice.goto("/")
    assert response is not None and response.ok
    csp = await response.header_value("content-security-policy")
    assert csp is not None, "the page has no Content-Security-Policy header"
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp

    await alice.login()
    await expect(page.locator("#me-name")).to_have_text("alice", timeout=TIMEOUT_MS)
    await alice.open_conversation("bob")
    await page.locator("#composer").fill("a picture of this")
    await page.locator("#composer").press("Enter")
    await expect(message(alice, "a picture of this", "out")).to_have_count(1, timeout=TIMEOUT_MS)

    assert (await page.title()).strip() != ""
    shot = tmp_path / "alice-conversation.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    await alice.assert_clean()

    # The browser enforces the header: an injected inline script is refused and reported.
    await page.evaluate(
        """() => {
        const s = document.createElement('script');
        s.textContent = 'window.inlineRan = 1';
        document.body.appendChild(s);
    }"""
    )
    await page.wait_for_function("window.__cspViolations.length > 0", timeout=TIMEOUT_MS)
    violations = await alice.csp_violations()
    assert len(violations) == 1 and violations[0]["directive"].startswith("script-src")
    assert await page.evaluate("typeof window.inlineRan") == "undefined"


@asynccontextmanager
async def cookie_catcher() -> AsyncIterator[tuple[str, list[str]]]:
    """Another local server, as any program on the machine could run: it keeps the Cookie
    header of every request the browser sends it."""
    seen: list[str] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie", ""))
        return web.Response(
            text="<!doctype html><title>elsewhere</title>", content_type="text/html"
        )

    runner = web.AppRunner(web.Application(), handle_signals=False)
    runner.app.router.add_get("/", page)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_two_uis_on_one_machine_stay_logged_in_and_another_port_gets_nothing_usable(
    trio: Cluster, browser: Browser
) -> None:
    """One browser, two daemons' UIs on two ports of 127.0.0.1 (as two Flame users of one machine,
    or one user's two accounts): both stay logged in. A server on a third port receives both
    session cookies (the browser sends a host's cookies to all its ports), and they are worthless
    there: replayed with the right Origin and Host, they open nothing."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        tabs = {}
        for name in ("alice", "bob"):
            tab = Tab(name, trio.daemons[name].ui_url, context, await context.new_page())
            await tab.open_session()
            tabs[name] = tab
        alice, bob = tabs["alice"], tabs["bob"]
        for tab in (alice, bob):  # neither login replaced the other's session
            await tab.page.reload()
            await expect(tab.page.locator("#me-name")).to_have_text(tab.name)
            await expect(tab.page.locator("#login-form")).to_have_count(0)
        await alice.open_conversation("bob")
        await bob.open_conversation("alice")
        await alice.page.locator("#composer").fill("two tabs, one browser")
        await alice.page.locator("#composer").press("Enter")
        await expect(message(bob, "two tabs, one browser", "in")).to_have_count(1)

        async with cookie_catcher() as (elsewhere, seen):
            other = await context.new_page()
            await other.goto(elsewhere)
            await expect(other).to_have_title("elsewhere")
        sent = SimpleCookie(seen[0])
        ports = {name: tab.url.rsplit(":", 1)[1] for name, tab in tabs.items()}
        assert {f"flame_session_{p}" for p in ports.values()} <= set(sent)
        for name, tab in tabs.items():
            cookie = {f"flame_session_{ports[name]}": sent[f"flame_session_{ports[name]}"].value}
            async with aiohttp.ClientSession(cookies=cookie) as replay:
                headers = {"Origin": tab.url}
                async with replay.get(tab.url + "/ui/api/me", headers=headers) as response:
                    assert response.status == 401
                async with replay.post(
                    tab.url + f"/ui/api/conversations/{'bob' if name == 'alice' else 'alice'}"
                    "/messages",
                    json={"text": "sent by someone else"},
                    headers=headers,
                ) as response:
                    assert response.status == 401
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await replay.ws_connect(tab.url + "/ui/api/ws", origin=tab.url)
                assert refused.value.status == 401
        await expect(message(bob, "sent by someone else", "in")).to_have_count(0)
        for tab in (alice, bob):  # and the real pages are still logged in
            await tab.page.reload()
            await expect(tab.page.locator("#me-name")).to_have_text(tab.name)
    finally:
        await context.close()

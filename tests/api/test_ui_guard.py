"""The local UI is an attack surface (docs/UI_API.md, "Rules"): Host, Origin, session, throttling,
headers and static files, handler by handler on the UI app alone (no cluster). Where it listens
is tests/e2e/test_ui_listener.py's."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import aiohttp
import pytest
from yarl import URL

from flame.api.ui.session import TOKEN_HEADER, LoginThrottle, cookie_name
from flame.devtools.ui import ws_protocols
from flame.errors import TooManyRequests
from tests.api.conftest import ApiNode
from tests.cluster import PASSWORD


async def raw(
    node: ApiNode,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    json: object = None,
    cookies: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """One request with a fresh client, as a foreign page or process would send it."""
    async with aiohttp.ClientSession(cookies=cookies) as session:
        async with session.request(
            method, node.ui_url + path, headers=headers or {}, json=json
        ) as response:
            return response.status, dict(response.headers), await response.text()


@dataclass(frozen=True)
class UiSession:
    """What the page holds after a login: the cookie (which the browser also sends to every other
    port of this host) and the page token (which only this UI's page knows)."""

    cookies: dict[str, str]
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {TOKEN_HEADER: self.token}


async def log_in(node: ApiNode) -> UiSession:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(
            node.ui_url + "/ui/api/login",
            json={"password": PASSWORD},
            headers={"Origin": node.ui_url},
        ) as response:
            assert response.status == 200
            token = (await response.json())["token"]
        name = cookie_name(node.ui.port or 0)
        cookie = session.cookie_jar.filter_cookies(URL(node.ui_url))[name]
        return UiSession({name: cookie.value}, token)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1:1",
        "localhost.evil.example:{port}",
        "127.0.0.2:{port}",
        "",
    ],
)
async def test_a_wrong_host_is_refused_on_every_route(node: ApiNode, host: str) -> None:
    header = host.format(port=node.ui.port)
    session = await log_in(node)
    for path in ("/", "/static/app.js", "/ui/api/me", "/ui/api/contacts"):
        headers = {"Host": header, **session.headers}
        status, _, body = await raw(node, "GET", path, headers=headers, cookies=session.cookies)
        assert status == 421, (path, body)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
async def test_the_local_names_are_accepted(node: ApiNode, host: str) -> None:
    status, _, body = await raw(node, "GET", "/", headers={"Host": host.format(port=node.ui.port)})
    assert status == 200 and "<html" in body.lower()


@pytest.mark.parametrize(
    "origin",
    [None, "null", "http://evil.example", "http://127.0.0.1:1", "https://127.0.0.1:{port}"],
)
async def test_a_state_change_needs_this_uis_origin(node: ApiNode, origin: str | None) -> None:
    session = await log_in(node)
    headers = {} if origin is None else {"Origin": origin.format(port=node.ui.port)}
    for path, payload in (
        ("/ui/api/login", {"password": PASSWORD}),
        ("/ui/api/conversations/alice/messages", {"text": "x"}),
        ("/ui/api/logout", {}),
    ):
        status, _, body = await raw(
            node,
            "POST",
            path,
            headers={**headers, **session.headers},
            json=payload,
            cookies=session.cookies,
        )
        assert status == 403 and "bad_origin" in body, (path, body)


@pytest.mark.parametrize("origin", [None, "null", "http://evil.example"])
async def test_the_websocket_upgrade_needs_this_uis_origin(
    node: ApiNode, origin: str | None
) -> None:
    session = await log_in(node)
    async with aiohttp.ClientSession(cookies=session.cookies) as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(
                node.ui_url + "/ui/api/ws", origin=origin, protocols=ws_protocols(session.token)
            )
        assert refused.value.status == 403


async def test_requests_without_the_session_are_refused(node: ApiNode) -> None:
    origin = {"Origin": node.ui_url}
    for method, path in (
        ("GET", "/ui/api/me"),
        ("GET", "/ui/api/contacts"),
        ("GET", "/ui/api/conversations/bob/messages"),
        ("POST", "/ui/api/conversations/bob/messages"),
        ("POST", "/ui/api/logout"),
    ):
        status, _, body = await raw(node, method, path, headers=origin, json={"text": "x"})
        assert status == 401 and "unauthorized" in body, (path, body)
        status, _, _ = await raw(
            node,
            method,
            path,
            headers=origin,
            json={"text": "x"},
            cookies={cookie_name(node.ui.port or 0): "forged-token"},
        )
        assert status == 401
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(node.ui_url + "/ui/api/ws", origin=node.ui_url)
        assert refused.value.status == 401


async def test_the_cookie_alone_or_the_token_alone_opens_nothing(node: ApiNode) -> None:
    """The browser sends the cookie to every port of 127.0.0.1: a server on another port that
    replays it (with this UI's Origin and Host, as a process can) still gets 401 everywhere,
    the WebSocket included. The page token comes from this UI's page only."""
    session = await log_in(node)
    origin = {"Origin": node.ui_url}
    routes = (
        ("GET", "/ui/api/me", None),
        ("GET", "/ui/api/contacts", None),
        ("POST", "/ui/api/conversations/zoe/messages", {"text": "as the user"}),
        ("GET", "/ui/api/profiles/zoe/avatar", None),
    )
    for method, path, payload in routes:
        status, _, body = await raw(
            node, method, path, headers=origin, json=payload, cookies=session.cookies
        )
        assert status == 401 and "unauthorized" in body, (path, body)
        status, _, _ = await raw(
            node, method, path, headers={**origin, **session.headers}, json=payload
        )
        assert status == 401, path
        status, _, _ = await raw(
            node,
            method,
            path,
            headers={**origin, TOKEN_HEADER: session.token[:-1] + "x"},
            json=payload,
            cookies=session.cookies,
        )
        assert status == 401, path
    # Only where an element loads bytes may the token ride in the query; elsewhere it is ignored.
    status, _, _ = await raw(
        node, "GET", f"/ui/api/me?token={session.token}", cookies=session.cookies
    )
    assert status == 401
    status, _, body = await raw(
        node, "GET", f"/ui/api/profiles/zoe/avatar?token={session.token}", cookies=session.cookies
    )
    assert status == 404 and "no_avatar" in body  # past the session check: zoe has none
    async with aiohttp.ClientSession(cookies=session.cookies) as client:
        for protocols in ((), ("flame",), ("flame", "flame-token.forged")):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(
                    node.ui_url + "/ui/api/ws", origin=node.ui_url, protocols=protocols
                )
            assert refused.value.status == 401, protocols
        ws = await client.ws_connect(
            node.ui_url + "/ui/api/ws", origin=node.ui_url, protocols=ws_protocols(session.token)
        )
        assert ws.protocol == "flame"  # the token is never echoed back
        assert (await ws.receive_json())["type"] == "hello"
        await ws.close()
    status, _, body = await raw(
        node, "GET", "/ui/api/me", headers=session.headers, cookies=session.cookies
    )
    assert status == 200 and '"alice"' in body


async def test_the_cookie_is_named_after_the_port_so_two_uis_keep_their_own(
    node: ApiNode,
) -> None:
    status, headers, _ = await raw(
        node, "POST", "/ui/api/login", headers={"Origin": node.ui_url}, json={"password": PASSWORD}
    )
    assert status == 200
    assert headers["Set-Cookie"].startswith(f"flame_session_{node.ui.port}=")


async def test_logout_ends_the_session_and_closes_its_feeds(node: ApiNode) -> None:
    session, other = await log_in(node), await log_in(node)
    origin = {"Origin": node.ui_url}
    assert (await raw(node, "GET", "/ui/api/me", headers=session.headers, cookies=session.cookies))[
        0
    ] == 200
    async with aiohttp.ClientSession(cookies=session.cookies) as client:
        feeds = []
        for who in (session, other):
            client.cookie_jar.update_cookies(who.cookies)
            ws = await client.ws_connect(
                node.ui_url + "/ui/api/ws", origin=node.ui_url, protocols=ws_protocols(who.token)
            )
            assert (await ws.receive_json())["type"] == "hello"
            feeds.append(ws)
        mine, theirs = feeds
        status, _, _ = await raw(
            node,
            "POST",
            "/ui/api/logout",
            headers={**origin, **session.headers},
            json={},
            cookies=session.cookies,
        )
        assert status == 200
        while (frame := await mine.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
            pass  # events sent before the logout
        assert frame.type == aiohttp.WSMsgType.CLOSE and frame.data == 4401
        await theirs.send_json({"type": "ping"})  # another session's feed stays open
        while (await theirs.receive_json(timeout=10))["type"] != "pong":
            pass
        await theirs.close()
    assert (await raw(node, "GET", "/ui/api/me", headers=session.headers, cookies=session.cookies))[
        0
    ] == 401
    assert (await raw(node, "GET", "/ui/api/me", headers=other.headers, cookies=other.cookies))[
        0
    ] == 200


async def test_security_headers_and_cookie_flags(node: ApiNode) -> None:
    status, headers, _ = await raw(node, "GET", "/")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert not any(h.lower().startswith("access-control-") for h in headers)
    status, headers, _ = await raw(
        node, "POST", "/ui/api/login", headers={"Origin": node.ui_url}, json={"password": PASSWORD}
    )
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert headers["Cache-Control"] == "no-store"
    assert len(cookie.split(";")[0].split("=", 1)[1]) >= 40  # 256 random bits, base64url
    status, headers, _ = await raw(node, "GET", "/static/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    status, _, _ = await raw(
        node, "POST", "/ui/api/login", headers={"Origin": node.ui_url, "Content-Type": "text/plain"}
    )
    assert status == 415


async def test_static_files_stay_inside_the_web_folder(node: ApiNode) -> None:
    for path in (
        "/static/../flame.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/..%2fpyproject.toml",
        "/static/nothing.js",
        "/static/index.html.bak",
    ):
        status, _, body = await raw(node, "GET", path)
        assert status == 404 and "flame" not in body.lower().split("not_found")[0], path


async def test_a_wrong_password_unlocks_nothing_and_logins_are_throttled(node: ApiNode) -> None:
    locked = node
    origin = {"Origin": locked.ui_url}
    status, _, body = await raw(
        locked, "POST", "/ui/api/login", headers=origin, json={"password": "wrong password"}
    )
    assert status == 401 and "Wrong password" in body
    assert not locked.holder.is_unlocked
    statuses = []
    for _ in range(6):
        status, headers, body = await raw(
            locked, "POST", "/ui/api/login", headers=origin, json={"password": "still wrong"}
        )
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1 and "Too many login attempts" in body
    assert 429 in statuses and not locked.holder.is_unlocked


async def login_from(node: ApiNode, source: str, password: str) -> tuple[int, dict[str, str]]:
    """One login attempt from `source`, any address of 127.0.0.0/8 (all of it is loopback)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            node.ui_url + "/ui/api/login",
            json={"password": password},
            headers={"Origin": node.ui_url},
        ) as response:
            return response.status, dict(response.headers)


async def test_many_source_addresses_get_no_more_guesses_than_one(node: ApiNode) -> None:
    """The throttle is the daemon's, not a source's: a guess from each of 40 addresses is checked
    no more often than 40 from one (the first two wrong passwords in a row cost nothing, then a
    delay of 1 s). The refused ones never reach Argon2."""
    answers = [await login_from(node, f"127.0.{i}.{i + 1}", f"guess {i}") for i in range(40)]
    statuses = [status for status, _ in answers]
    assert statuses[:2] == [401, 401]
    assert set(statuses[2:]) == {429}, statuses
    assert not node.holder.is_unlocked
    for _, headers in answers[2:]:
        assert 1 <= int(headers["Retry-After"]) <= 15
    # Once the delay is over, the user's password works.
    status, headers = await login_from(node, "127.0.0.1", PASSWORD)
    if status == 429:  # still inside the delay: it says how long, and that is enough
        await asyncio.sleep(float(headers["Retry-After"]))
        status, _ = await login_from(node, "127.0.0.1", PASSWORD)
    assert status == 200 and node.holder.is_unlocked


def test_guessing_all_day_leaves_the_user_locked_out_for_at_most_the_longest_delay() -> None:
    """Against the throttle's own clock: a guesser that tries every 10 ms for an hour gets a
    password checked at most once per 15 s once the delay has grown; the moment it stops, the
    user waits at most 15 s, and a right password resets everything."""
    throttle = LoginThrottle(first_delay_s=1.0, max_delay_s=15.0)
    checked: list[float] = []
    for step in range(360_000):
        now = step / 100
        try:
            throttle.admit(now)
        except TooManyRequests as refused:
            assert refused.retry_after_s is not None and 0 < refused.retry_after_s <= 15.0
            continue
        checked.append(now)
        throttle.failed(now)
    gaps = [b - a for a, b in itertools.pairwise(checked)]
    assert gaps[:6] == pytest.approx([0.0, 1.0, 2.0, 4.0, 8.0, 15.0], abs=0.011)
    assert min(gaps[5:]) >= 15.0 - 1e-9 and len(checked) <= 6 + 3600 / 15
    last = checked[-1]
    with pytest.raises(TooManyRequests):
        throttle.admit(last + 14.9)
    throttle.admit(last + 15.0)  # the user, right after the guessing stopped
    throttle.succeeded()
    throttle.admit(last + 15.0)
    assert throttle.failures == 0

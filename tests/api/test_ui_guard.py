"""The local UI is an attack surface (docs/UI_API.md, "Rules"): Host, Origin, session, throttling,
headers and static files, handler by handler on the UI app alone (no cluster). Where it listens
is tests/e2e/test_ui_listener.py's."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

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


async def session_cookie(node: ApiNode) -> dict[str, str]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(
            node.ui_url + "/ui/api/login",
            json={"password": PASSWORD},
            headers={"Origin": node.ui_url},
        ) as response:
            assert response.status == 200
        cookie = session.cookie_jar.filter_cookies(URL(node.ui_url))["flame_session"]
        return {"flame_session": cookie.value}


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
    cookies = await session_cookie(node)
    for path in ("/", "/static/app.js", "/ui/api/me", "/ui/api/contacts"):
        status, _, body = await raw(node, "GET", path, headers={"Host": header}, cookies=cookies)
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
    cookies = await session_cookie(node)
    headers = {} if origin is None else {"Origin": origin.format(port=node.ui.port)}
    for path, payload in (
        ("/ui/api/login", {"password": PASSWORD}),
        ("/ui/api/conversations/alice/messages", {"text": "x"}),
        ("/ui/api/logout", {}),
    ):
        status, _, body = await raw(
            node, "POST", path, headers=headers, json=payload, cookies=cookies
        )
        assert status == 403 and "bad_origin" in body, (path, body)


@pytest.mark.parametrize("origin", [None, "null", "http://evil.example"])
async def test_the_websocket_upgrade_needs_this_uis_origin(
    node: ApiNode, origin: str | None
) -> None:
    cookies = await session_cookie(node)
    async with aiohttp.ClientSession(cookies=cookies) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(node.ui_url + "/ui/api/ws", origin=origin)
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
            cookies={"flame_session": "forged-token"},
        )
        assert status == 401
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(node.ui_url + "/ui/api/ws", origin=node.ui_url)
        assert refused.value.status == 401


async def test_logout_ends_the_session(node: ApiNode) -> None:
    cookies = await session_cookie(node)
    origin = {"Origin": node.ui_url}
    assert (await raw(node, "GET", "/ui/api/me", cookies=cookies))[0] == 200
    assert (await raw(node, "POST", "/ui/api/logout", headers=origin, json={}, cookies=cookies))[
        0
    ] == 200
    assert (await raw(node, "GET", "/ui/api/me", cookies=cookies))[0] == 401


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

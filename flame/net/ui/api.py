"""The browser's JSON API, its WebSocket and the static page (docs/UI_API.md).

Handlers are thin: check the session, parse, call messaging/roster, answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import Field

from flame import receipts, status
from flame.core.crypto import fingerprint
from flame.core.models import Wire, check_username
from flame.errors import BadRequest, NotFound, WrongPassword
from flame.files import message_views
from flame.messaging import send_text
from flame.net.http import error_middleware, parse_model, read_body
from flame.net.ui import diagnostics, social
from flame.net.ui import files as ui_files
from flame.net.ui.guard import (
    SESSION_COOKIE,
    LoginThrottle,
    Sessions,
    UiOrigin,
    build_middlewares,
    require_origin_for_ws,
)
from flame.parts import Parts
from flame.roster import contact_view
from flame.store import contacts as contact_store
from flame.store import messages as message_store
from flame.store.keystore import set_meta

log = logging.getLogger("flame.ui")

# The UI's own files, by type. Fixed here rather than taken from the machine's mime.types: with
# nosniff, a module script served under another type would not run. Anything else is not served.
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".html": "text/html; charset=utf-8",
    ".woff2": "font/woff2",
}

Login = Callable[[str], Awaitable[None]]


class LoginBody(Wire):
    password: str = Field(max_length=1024)


class SendBody(Wire):
    text: str


class UiState:
    def __init__(self, parts: Parts, login: Login, origin: UiOrigin) -> None:
        self.parts = parts
        self.login = login
        self.origin = origin
        self.sessions = Sessions()
        security = parts.settings.security
        self.throttle = LoginThrottle(security.login_burst, security.login_refill_s)


UI = web.AppKey("ui", UiState)


def _peer_name(request: web.Request) -> str:
    name = request.match_info["name"]
    try:
        return check_username(name)
    except ValueError as exc:
        raise NotFound(f"There is no user named {name!r}.", code="unknown_recipient") from exc


def _me(parts: Parts) -> dict[str, Any]:
    return {
        "username": parts.me,
        "fingerprint": fingerprint(parts.account.identity_key),
        "directory": parts.directory_state,
    }


async def _body(request: web.Request) -> bytes:
    return await read_body(request, request.app[UI].parts.settings.daemon.max_body_bytes)


def _session(request: web.Request) -> str:
    ui = request.app[UI]
    return ui.sessions.check(request, ui.parts.clock.now())


async def login(request: web.Request) -> web.Response:
    ui = request.app[UI]
    client = request.remote or "unknown"
    ui.throttle.take(client, ui.parts.clock.now())
    body = parse_model(LoginBody, await _body(request))
    async with ui.throttle.kdf_slots:
        await asyncio.sleep(ui.throttle.penalty_s(client))
        try:
            await ui.login(body.password)
        except WrongPassword:
            ui.throttle.failed(client)
            raise
    ui.throttle.succeeded(client)
    status.activity(ui.parts)
    token = ui.sessions.create(ui.parts.clock.now())
    response = web.json_response(_me(ui.parts))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response


async def logout(request: web.Request) -> web.Response:
    ui = request.app[UI]
    ui.sessions.revoke(_session(request))
    response = web.json_response({})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    _session(request)
    return web.json_response(_me(request.app[UI].parts))


async def contacts(request: web.Request) -> web.Response:
    _session(request)
    parts = request.app[UI].parts
    views = [await contact_view(parts, c) for c in await contact_store.list_contacts(parts.db)]
    if request.query.get("blocked") != "1":  # blocked people only when asked for (§12.4)
        views = [view for view in views if not view["blocked"]]
    return web.json_response({"contacts": views})


async def accept_key(request: web.Request) -> web.Response:
    _session(request)
    parts = request.app[UI].parts
    name = _peer_name(request)
    await contact_store.accept_pending_key(parts.db, name, parts.clock.now())
    contact = await contact_store.get_contact(parts.db, name)
    if contact is None:
        raise NotFound(f"There is no contact named {name!r}.")
    return web.json_response(await contact_view(parts, contact))


def _cursor(raw: str | None) -> tuple[float, int, int] | None:
    """The opaque 'before' cursor: sent_at:seq:rowid of the oldest message of the last page."""
    if raw is None or raw == "":
        return None
    try:
        sent_at, seq, rowid = raw.split(":")
        cursor = float(sent_at), int(seq), int(rowid)
    except ValueError as exc:
        raise BadRequest("The 'before' cursor is malformed.") from exc
    if not math.isfinite(cursor[0]):
        raise BadRequest("The 'before' cursor is malformed.")
    return cursor


async def list_messages(request: web.Request) -> web.Response:
    _session(request)
    parts = request.app[UI].parts
    name = _peer_name(request)
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError as exc:
        raise BadRequest("'limit' must be a whole number.") from exc
    if not 1 <= limit <= 200:
        raise BadRequest("'limit' must be between 1 and 200.")
    page = await message_store.list_messages(
        parts.db, name, before=_cursor(request.query.get("before")), limit=limit
    )
    oldest = page[0] if page else None
    next_before = (
        f"{oldest.sent_at!r}:{oldest.seq}:{oldest.rowid}"
        if oldest is not None and len(page) == limit
        else None
    )
    if request.query.get("before") is None and page:
        # Showing the newest page means the user has seen the conversation.
        await receipts.mark_read(parts, name, max(m.rowid for m in page))
    views = await message_views(parts, page)
    return web.json_response({"messages": views, "next_before": next_before})


async def mark_conversation_read(request: web.Request) -> web.Response:
    """The page shows the conversation and a live message arrived in it: the user saw it."""
    _session(request)
    parts = request.app[UI].parts
    name = _peer_name(request)
    await receipts.mark_read(parts, name, await message_store.newest_rowid(parts.db, name))
    return web.json_response({})


class SettingsBody(Wire):
    read_receipts: bool


async def get_settings(request: web.Request) -> web.Response:
    _session(request)
    parts = request.app[UI].parts
    return web.json_response({"read_receipts": await receipts.read_receipts_enabled(parts)})


async def put_settings(request: web.Request) -> web.Response:
    _session(request)
    parts = request.app[UI].parts
    body = parse_model(SettingsBody, await _body(request))
    await set_meta(parts.db, "read_receipts", "on" if body.read_receipts else "off")
    return web.json_response({"read_receipts": body.read_receipts})


async def post_message(request: web.Request) -> web.Response:
    _session(request)
    parts = request.app[UI].parts
    name = _peer_name(request)
    body = parse_model(SendBody, await _body(request))
    message = await send_text(parts, name, body.text)
    return web.json_response({"message": message.to_ui()}, status=201)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ui = request.app[UI]
    require_origin_for_ws(request, ui.origin)
    _session(request)
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    queue = ui.parts.hub.subscribe()
    await ws.send_json({"type": "hello", "me": _me(ui.parts)})
    await ws.send_json(status.view(ui.parts))
    status.ui_opened(ui.parts)  # an open UI keeps the status online (PROTOCOL.md §12.2)

    async def read_client() -> None:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                kind = json.loads(frame.data).get("type")
                if kind == "ping":
                    await ws.send_json({"type": "pong"})
                elif kind == "activity":  # the user typed, clicked or scrolled
                    status.activity(ui.parts)

    reader = asyncio.create_task(read_client())
    try:
        while not reader.done():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            if event is None:
                break
            await ws.send_json(event)
    except ConnectionResetError:
        pass
    finally:
        status.ui_closed(ui.parts)
        ui.parts.hub.unsubscribe(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


def build(parts: Parts, web_dir: Path, login_fn: Login, origin: UiOrigin) -> web.Application:
    headers, guard = build_middlewares(origin)
    app = web.Application(
        middlewares=[headers, error_middleware, guard],  # type: ignore[list-item]
        client_max_size=parts.settings.daemon.max_body_bytes,
    )
    app[UI] = UiState(parts, login_fn, origin)
    index = web_dir / "index.html"

    root = web_dir.resolve()

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Content-Type": STATIC_TYPES[".html"]})

    async def static(request: web.Request) -> web.FileResponse:
        path = (root / request.match_info["path"]).resolve()
        content_type = STATIC_TYPES.get(path.suffix)
        if content_type is None or not path.is_relative_to(root) or not path.is_file():
            raise NotFound("No such file.")
        return web.FileResponse(path, headers={"Content-Type": content_type})

    app.router.add_get("/", page)
    app.router.add_get("/static/{path:.+}", static)
    app.router.add_post("/ui/api/login", login)
    app.router.add_post("/ui/api/logout", logout)
    app.router.add_get("/ui/api/me", me)
    app.router.add_get("/ui/api/contacts", contacts)
    app.router.add_post("/ui/api/contacts/{name}/accept-key", accept_key)
    app.router.add_get("/ui/api/conversations/{name}/messages", list_messages)
    app.router.add_post("/ui/api/conversations/{name}/messages", post_message)
    app.router.add_post("/ui/api/conversations/{name}/read", mark_conversation_read)
    app.router.add_get("/ui/api/settings", get_settings)
    app.router.add_post("/ui/api/settings", put_settings)
    app.router.add_get("/ui/api/ws", websocket)
    social.add_routes(app, parts, _session)
    ui_files.add_routes(app, parts, _session)
    diagnostics.add_routes(app, parts, _session)
    return app

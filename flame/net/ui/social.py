"""The browser's routes for profiles, status, blocking and search (docs/UI_API.md). Thin handlers:
check the session (the guard middleware already checked Host, Origin and content type), parse,
call the daemon's logic, answer. Added to the UI app by ui/api.build."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import Field

from flame import blocks, my_profile, status
from flame.core.image import image_header
from flame.core.models import ProfileFields, Wire, check_username
from flame.errors import BadRequest, NotFound
from flame.net.http import parse_model, read_body
from flame.parts import Parts
from flame.people import profile_view
from flame.profiles import request_refresh
from flame.roster import fetch_contact
from flame.search import search
from flame.store import contacts as contact_store
from flame.store import profiles as profile_store
from flame.store.search import SearchFilters, messages_around

CheckSession = Callable[[web.Request], str]
AVATAR_BODY_MAX = 4 * 1024 * 1024 + 64 * 1024  # base64 of my_profile.UPLOAD_MAX_BYTES, and JSON


class AvatarBody(Wire):
    image: str | None = Field(max_length=AVATAR_BODY_MAX)  # standard base64; null removes it


class StatusBody(Wire):
    status: str = Field(max_length=20)


class BlockBody(Wire):
    username: str = Field(max_length=64)


def _name(raw: str) -> str:
    try:
        return check_username(raw)
    except ValueError as exc:
        raise NotFound(f"There is no user named {raw!r}.", code="unknown_user") from exc


def _number(request: web.Request, key: str) -> float | None:
    raw = request.query.get(key, "")
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise BadRequest(f"'{key}' must be a time in epoch seconds.") from exc
    if not math.isfinite(value):
        raise BadRequest(f"'{key}' must be a time in epoch seconds.")
    return value


def _count(request: web.Request, key: str, default: int, high: int) -> int:
    try:
        value = int(request.query.get(key, str(default)))
    except ValueError as exc:
        raise BadRequest(f"'{key}' must be a whole number.") from exc
    if not 1 <= value <= high:
        raise BadRequest(f"'{key}' must be between 1 and {high}.")
    return value


def add_routes(app: web.Application, parts: Parts, check_session: CheckSession) -> None:
    limit = parts.settings.daemon.max_body_bytes

    async def get_own(request: web.Request) -> web.Response:
        check_session(request)
        return web.json_response(await profile_view(parts, parts.me))

    async def put_own(request: web.Request) -> web.Response:
        check_session(request)
        fields = parse_model(ProfileFields, await read_body(request, limit), what="profile")
        status.activity(parts)
        return web.json_response(await my_profile.update_own(parts, fields))

    async def put_avatar(request: web.Request) -> web.Response:
        check_session(request)
        body = parse_model(AvatarBody, await read_body(request, AVATAR_BODY_MAX), what="avatar")
        avatar = None
        if body.image is not None:
            try:
                data = base64.b64decode(body.image, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadRequest("The image must be base64.", code="bad_avatar") from exc
            avatar = await my_profile.prepare_avatar(data)
        status.activity(parts)
        return web.json_response(await my_profile.update_own(parts, avatar=avatar))

    async def get_profile(request: web.Request) -> web.Response:
        check_session(request)
        name = _name(request.match_info["name"])
        if name != parts.me:
            contact = await contact_store.get_contact(parts.db, name)
            if contact is None and parts.identity is not None:
                contact = await fetch_contact(parts, name)
            if contact is None:
                raise NotFound(f"There is no user named {name!r}.", code="unknown_user")
            request_refresh(parts, name)  # the page updates with a `profile` event if it changed
        return web.json_response(await profile_view(parts, name))

    async def get_avatar(request: web.Request) -> web.Response:
        check_session(request)
        name = _name(request.match_info["name"])
        stored = await profile_store.get_profile(parts.db, name)
        if stored is None or stored.avatar is None:
            raise NotFound(f"{name} has no avatar.", code="no_avatar")
        content_type, _, _ = image_header(stored.avatar)  # checked when stored; never sniffed
        return web.Response(
            body=stored.avatar,
            content_type=content_type,
            headers={"Content-Disposition": "inline", "Cache-Control": "private, max-age=86400"},
        )

    async def get_status(request: web.Request) -> web.Response:
        check_session(request)
        return web.json_response(status.view(parts))

    async def put_status(request: web.Request) -> web.Response:
        check_session(request)
        body = parse_model(StatusBody, await read_body(request, limit), what="status")
        return web.json_response(await status.choose(parts, body.status))

    async def list_blocks(request: web.Request) -> web.Response:
        check_session(request)
        return web.json_response({"blocked": await blocks.blocked_list(parts)})

    async def add_block(request: web.Request) -> web.Response:
        check_session(request)
        body = parse_model(BlockBody, await read_body(request, limit), what="block")
        name = _name(body.username)
        if name == parts.me:
            raise BadRequest("You cannot block yourself.", code="bad_block")
        await blocks.block(parts, name)
        return web.json_response(await profile_view(parts, name))

    async def remove_block(request: web.Request) -> web.Response:
        check_session(request)
        name = _name(request.match_info["name"])
        await blocks.unblock(parts, name)
        return web.json_response(await profile_view(parts, name))

    async def run_search(request: web.Request) -> web.Response:
        check_session(request)
        peer = request.query.get("peer") or None
        if peer is not None:
            peer = _name(peer)
        order = request.query.get("order", "newest")
        if order not in ("newest", "relevance"):
            raise BadRequest("'order' must be newest or relevance.")
        filters = SearchFilters(
            peer=peer,
            since=_number(request, "since"),
            until=_number(request, "until"),
            order="newest" if order == "newest" else "relevance",
            limit=_count(request, "limit", 30, 100),
        )
        return web.json_response(await search(parts, request.query.get("q", ""), filters))

    async def context(request: web.Request) -> web.Response:
        check_session(request)
        name = _name(request.match_info["name"])
        message_id = request.match_info["id"]
        around = await messages_around(
            parts.db,
            name,
            message_id,
            _count(request, "before", 25, 200),
            _count(request, "after", 25, 200),
        )
        if around is None:
            raise NotFound("There is no such message in this conversation.", code="no_message")
        page, has_older, has_newer = around
        payload: dict[str, Any] = {
            "messages": [m.to_ui() for m in page],
            "next_before": (
                f"{page[0].sent_at!r}:{page[0].seq}:{page[0].rowid}" if has_older else None
            ),
            "has_newer": has_newer,
            "target": message_id,
        }
        return web.json_response(payload)

    router = app.router
    router.add_get("/ui/api/profile", get_own)
    router.add_put("/ui/api/profile", put_own)
    router.add_put("/ui/api/profile/avatar", put_avatar)
    router.add_get("/ui/api/profiles/{name}", get_profile)
    router.add_get("/ui/api/profiles/{name}/avatar", get_avatar)
    router.add_get("/ui/api/status", get_status)
    router.add_put("/ui/api/status", put_status)
    router.add_get("/ui/api/blocks", list_blocks)
    router.add_post("/ui/api/blocks", add_block)
    router.add_delete("/ui/api/blocks/{name}", remove_block)
    router.add_get("/ui/api/search", run_search)
    router.add_get("/ui/api/conversations/{name}/messages/{id}/context", context)

"""Profiles, status, blocking and search (docs/UI_API.md, "Profiles, status, blocking, search")."""

from __future__ import annotations

import base64
import binascii
import math

from aiohttp import web
from pydantic import Field

from flame.api.ui import views
from flame.api.ui.conversations import count_param
from flame.api.ui.state import UI, path_name, username_or_404
from flame.core.image import image_header
from flame.core.models import ProfileFields, Wire
from flame.errors import BadRequest, NotFound
from flame.net.http import parse_model
from flame.services.avatar import UPLOAD_MAX_BYTES, prepare_avatar
from flame.store import profiles as profile_store
from flame.store.search import SearchFilters

AVATAR_BODY_MAX = (UPLOAD_MAX_BYTES * 4 + 2) // 3 + 64 * 1024  # base64 of the image, and JSON


class AvatarBody(Wire):
    image: str | None = Field(max_length=AVATAR_BODY_MAX)  # standard base64; null removes it


class StatusBody(Wire):
    status: str = Field(max_length=20)


class BlockBody(Wire):
    username: str = Field(max_length=64)


def time_param(request: web.Request, key: str) -> float | None:
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


async def get_own(request: web.Request) -> web.Response:
    services = request.app[UI].services
    return web.json_response(views.profile_json(await services.people.person(services.ctx.me)))


async def put_own(request: web.Request) -> web.Response:
    ui = request.app[UI]
    fields = parse_model(ProfileFields, await ui.body(request), what="profile")
    ui.services.status.activity()
    return web.json_response(views.profile_json(await ui.services.profiles.update_own(fields)))


async def put_avatar(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(AvatarBody, await ui.body(request, AVATAR_BODY_MAX), what="avatar")
    avatar = None
    if body.image is not None:
        try:
            data = base64.b64decode(body.image, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("The image must be base64.", code="bad_avatar") from exc
        avatar = await prepare_avatar(data)
    ui.services.status.activity()
    person = await ui.services.profiles.update_own(avatar=avatar)
    return web.json_response(views.profile_json(person))


async def get_profile(request: web.Request) -> web.Response:
    services = request.app[UI].services
    name = path_name(request)
    if name != services.ctx.me:
        if await services.contacts.find(name) is None:
            raise NotFound(f"There is no user named {name!r}.", code="unknown_user")
        services.profiles.request_refresh(name)  # a newer one comes as a `profile` event
    return web.json_response(views.profile_json(await services.people.person(name)))


async def get_avatar(request: web.Request) -> web.Response:
    ctx = request.app[UI].services.ctx
    name = path_name(request)
    stored = await profile_store.get_profile(ctx.db, name)
    if stored is None or stored.avatar is None:
        raise NotFound(f"{name} has no avatar.", code="no_avatar")
    content_type, _, _ = image_header(stored.avatar)  # checked when stored; never sniffed
    return web.Response(
        body=stored.avatar,
        content_type=content_type,
        headers={"Content-Disposition": "inline", "Cache-Control": "private, max-age=86400"},
    )


async def get_status(request: web.Request) -> web.Response:
    status = request.app[UI].services.status
    return web.json_response(views.my_status_json(status.view()))


async def put_status(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(StatusBody, await ui.body(request), what="status")
    return web.json_response(views.my_status_json(await ui.services.status.choose(body.status)))


async def list_blocks(request: web.Request) -> web.Response:
    blocks = request.app[UI].services.blocks
    return web.json_response(views.blocked_json(await blocks.listing()))


async def add_block(request: web.Request) -> web.Response:
    ui = request.app[UI]
    services = ui.services
    body = parse_model(BlockBody, await ui.body(request), what="block")
    name = username_or_404(body.username)
    if name == services.ctx.me:
        raise BadRequest("You cannot block yourself.", code="bad_block")
    await services.blocks.block(name)
    return web.json_response(views.profile_json(await services.people.person(name)))


async def remove_block(request: web.Request) -> web.Response:
    services = request.app[UI].services
    name = path_name(request)
    await services.blocks.unblock(name)
    return web.json_response(views.profile_json(await services.people.person(name)))


async def search(request: web.Request) -> web.Response:
    services = request.app[UI].services
    peer = request.query.get("peer") or None
    if peer is not None:
        peer = username_or_404(peer)
    order = request.query.get("order", "newest")
    if order not in ("newest", "relevance"):
        raise BadRequest("'order' must be newest or relevance.")
    filters = SearchFilters(
        peer=peer,
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        order="newest" if order == "newest" else "relevance",
        limit=count_param(request, "limit", 30, 100),
    )
    result = await services.search.search(request.query.get("q", ""), filters)
    return web.json_response(views.search_json(result))

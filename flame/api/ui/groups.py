"""Groups for the browser (docs/UI_API.md, "Groups"; PROTOCOL.md §19): list, create, change the
membership, write, read, search. Thin: parse, call the Groups service, answer with views."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from aiohttp import web
from pydantic import Field

from flame.api.ui import group_views, views
from flame.api.ui.conversations import ReadBody, SendBody, count_param, cursor_text, parse_cursor
from flame.api.ui.group_views import Json
from flame.api.ui.social import AVATAR_BODY_MAX
from flame.api.ui.state import UI
from flame.core.encoding import b64d, b64e
from flame.core.image import image_header
from flame.core.models import Username, Wire
from flame.errors import BadRequest, NotFound
from flame.net.http import parse_model
from flame.services.avatar import prepare_avatar

PICTURE_ROUTE = "ui_group_picture"
MEMBERS_MAX = 200  # the rule (100) is the service's, with its own code; this bounds the body


class CreateBody(Wire):
    name: str = Field(max_length=1000)
    members: list[Username] = Field(max_length=MEMBERS_MAX)
    picture: str | None = Field(default=None, max_length=AVATAR_BODY_MAX)  # standard base64


class ChangeBody(Wire):
    op: Literal["add", "remove", "promote", "rename", "picture", "leave"]
    members: list[Username] = Field(default_factory=list, max_length=MEMBERS_MAX)
    name: str | None = Field(default=None, max_length=1000)
    picture: str | None = Field(default=None, max_length=AVATAR_BODY_MAX)


async def _picture(raw: str | None) -> str | None:
    """The browser's picture, cropped and re-encoded as an avatar is (at most 64 KiB)."""
    if raw is None:
        return None
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("The picture must be base64.", code="bad_avatar") from exc
    return b64e(await prepare_avatar(data))


def _group_id(request: web.Request) -> str:
    return request.match_info["id"]


async def list_groups(request: web.Request) -> web.Response:
    groups = request.app[UI].services.groups
    return web.json_response({"groups": [group_views.group_json(c) for c in await groups.cards()]})


async def get_group(request: web.Request) -> web.Response:
    groups = request.app[UI].services.groups
    group = await groups.get(_group_id(request))
    return web.json_response({"group": group_views.group_json(await groups.card(group))})


async def create(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(CreateBody, await ui.body(request, AVATAR_BODY_MAX + 64 * 1024))
    groups = ui.services.groups
    group = await groups.create(body.name, body.members, await _picture(body.picture))
    return web.json_response(
        {"group": group_views.group_json(await groups.card(group))}, status=201
    )


async def change(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(ChangeBody, await ui.body(request, AVATAR_BODY_MAX + 64 * 1024))
    groups = ui.services.groups
    group = await groups.change(
        _group_id(request), body.op, body.members, body.name, await _picture(body.picture)
    )
    return web.json_response({"group": group_views.group_json(await groups.card(group))})


async def list_messages(request: web.Request) -> web.Response:
    groups = request.app[UI].services.groups
    limit = count_param(request, "limit", 50, 200)
    before = parse_cursor(request.query.get("before"))
    messages, copies = await groups.page(_group_id(request), before, limit)
    files = await _files(request, [m.id for m in messages])
    oldest = messages[0] if len(messages) == limit else None
    cursor = None if oldest is None else (oldest.sent_at, oldest.seq, oldest.rowid)
    return web.json_response(
        {
            "messages": [
                group_views.group_message_json(m, copies.get(m.id, ()), files.get(m.id))
                for m in messages
            ],
            "next_before": cursor_text(cursor),
        }
    )


async def post_message(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(SendBody, await ui.body(request))
    groups = ui.services.groups
    message = await groups.send_text(_group_id(request), body.text)
    copies = await groups.copies(message.id)
    return web.json_response(
        {"message": group_views.group_message_json(message, copies)}, status=201
    )


async def mark_read(request: web.Request) -> web.Response:
    ui = request.app[UI]
    raw = await ui.body(request)
    body = parse_model(ReadBody, raw) if raw.strip() else ReadBody()
    await ui.services.groups.mark_read(_group_id(request), body.up_to)
    return web.json_response({})


async def picture(request: web.Request) -> web.Response:
    groups = request.app[UI].services.groups
    group = await groups.get(_group_id(request))
    if group.picture is None:
        raise NotFound("This group has no picture.", code="no_avatar")
    data = b64d(group.picture, what="picture")
    content_type, _, _ = image_header(data)  # checked when the operation was; never sniffed
    return web.Response(
        body=data,
        content_type=content_type,
        headers={"Content-Disposition": "inline", "Cache-Control": "private, max-age=86400"},
    )


async def search(request: web.Request) -> web.Response:
    """Group messages matching `q` (the query language of PROTOCOL.md §12.3), newest first."""
    groups = request.app[UI].services.groups
    limit = count_param(request, "limit", 30, 100)
    found = await groups.search(request.query.get("q", ""), limit)
    files = await _files(request, [m.id for m in found])
    return web.json_response(
        {"messages": [group_views.group_message_json(m, (), files.get(m.id)) for m in found]}
    )


async def _files(request: web.Request, keys: list[str]) -> dict[str, Json]:
    """The `File` each of these group messages carries (PROTOCOL.md §19.7)."""
    found = await request.app[UI].services.group_files.files_of(keys)
    return {key: views.file_json(transfer) for key, transfer in found.items()}

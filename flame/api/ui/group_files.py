"""Files in group conversations (docs/UI_API.md, "Group files"; PROTOCOL.md §19.7): announce,
upload (streamed), look, fetch, cancel (the author) and decline (a member). Thin: parse, call
the GroupFiles service, answer with views."""

from __future__ import annotations

from aiohttp import web

from flame.api.ui import group_views, views
from flame.api.ui.files import ANNOUNCE_BYTES, TRANSFER_ID_MAX_CHARS, AnnounceBody, serve_content
from flame.api.ui.state import UI, username_or_404
from flame.errors import NotFound
from flame.net.http import parse_model
from flame.services.group_files import GroupFiles

UPLOAD_ROUTE = "ui_group_file_upload"  # streamed, not JSON (api/ui/guard.py)


def _names(request: web.Request) -> tuple[GroupFiles, str, str, str]:
    """The service, the group id, the file's author (this user when the path names none) and
    the transfer id."""
    files = request.app[UI].services.group_files
    transfer_id = request.match_info.get("transfer_id", "")
    if len(transfer_id) > TRANSFER_ID_MAX_CHARS:
        raise NotFound("There is no such file in this group.", code="unknown_file")
    raw_author = request.match_info.get("author")
    author = (
        files.groups.ctx.me
        if raw_author is None
        else username_or_404(raw_author, code="unknown_file")
    )
    return files, request.match_info["id"], author, transfer_id


async def announce(request: web.Request) -> web.Response:
    files, group_id, _, _ = _names(request)
    body = parse_model(AnnounceBody, await request.app[UI].body(request, ANNOUNCE_BYTES))
    transfer = await files.begin(group_id, body.name, body.size, body.type, body.caption)
    return web.json_response({"file": views.file_json(transfer)}, status=201)


async def upload(request: web.Request) -> web.Response:
    files, group_id, _, transfer_id = _names(request)
    message, transfer = await files.take(
        group_id, transfer_id, request.content_length, request.content
    )
    copies = await files.groups.copies(message.id)
    return web.json_response(
        {
            "message": group_views.group_message_json(message, copies, views.file_json(transfer)),
            "file": views.file_json(transfer),
        },
        status=201,
    )


async def view(request: web.Request) -> web.Response:
    files, group_id, author, transfer_id = _names(request)
    return web.json_response(
        {"file": views.file_json(await files.find(group_id, author, transfer_id))}
    )


async def content(request: web.Request) -> web.StreamResponse:
    files, group_id, author, transfer_id = _names(request)
    found = await files.find(group_id, author, transfer_id)
    return await serve_content(request, files.uploads, found)


async def cancel(request: web.Request) -> web.Response:
    files, group_id, _, transfer_id = _names(request)
    await request.app[UI].body(request, ANNOUNCE_BYTES)
    return web.json_response({"file": views.file_json(await files.cancel(group_id, transfer_id))})


async def decline(request: web.Request) -> web.Response:
    files, group_id, author, transfer_id = _names(request)
    await request.app[UI].body(request, ANNOUNCE_BYTES)
    transfer = await files.decline(group_id, author, transfer_id)
    return web.json_response({"file": views.file_json(transfer)})

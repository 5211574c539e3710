"""The browser's file routes (docs/UI_API.md, "Files"): announce, upload (streamed), look, fetch,
cancel and decline.

A served file never runs: it is an attachment unless its magic bytes prove an inline image, audio
or video type, always with nosniff and a CSP that allows nothing (docs/UI_API.md).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from flame.api.ui import views
from flame.api.ui.state import UI, path_name
from flame.core.files import OCTET_STREAM, content_disposition, media_class
from flame.core.models import Wire
from flame.errors import NotFound
from flame.net.http import parse_model
from flame.services.files.uploads import Uploads

UPLOAD_ROUTE = "ui_file_upload"  # the one UI route whose body is not JSON (api/ui/guard.py)
FILE_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
ANNOUNCE_BYTES = 16 * 1024
TRANSFER_ID_MAX_CHARS = 64


class AnnounceBody(Wire):
    name: str = Field(max_length=4096)
    size: int
    type: str = Field(default="", max_length=255)


def _names(request: web.Request) -> tuple[Uploads, str, str]:
    """The uploads service, the peer's name and the transfer id from the path."""
    peer = path_name(request, code="unknown_recipient")
    transfer_id = request.match_info.get("id", "")
    if len(transfer_id) > TRANSFER_ID_MAX_CHARS:
        raise NotFound("There is no such file in this conversation.", code="unknown_file")
    return request.app[UI].services.uploads, peer, transfer_id


async def announce(request: web.Request) -> web.Response:
    uploads, peer, _ = _names(request)
    body = parse_model(AnnounceBody, await request.app[UI].body(request, ANNOUNCE_BYTES))
    transfer = await uploads.begin_upload(peer, body.name, body.size, body.type)
    return web.json_response({"file": views.file_json(transfer)}, status=201)


async def upload(request: web.Request) -> web.Response:
    uploads, peer, transfer_id = _names(request)
    message, transfer = await uploads.take_upload(
        peer, transfer_id, request.content_length, request.content
    )
    return web.json_response(
        {"message": views.message_json(message, transfer), "file": views.file_json(transfer)},
        status=201,
    )


async def view(request: web.Request) -> web.Response:
    uploads, peer, transfer_id = _names(request)
    transfer = await uploads.find(peer, transfer_id)
    return web.json_response({"file": views.file_json(transfer)})


async def content(request: web.Request) -> web.FileResponse:
    uploads, peer, transfer_id = _names(request)
    transfer = await uploads.find(peer, transfer_id)
    path = uploads.content_path(transfer)
    inline = media_class(transfer.media_type) is not None and request.query.get("download") != "1"
    headers = {
        "Content-Type": (transfer.media_type or OCTET_STREAM) if inline else OCTET_STREAM,
        "Content-Disposition": content_disposition(transfer.name, inline=inline),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FILE_CSP,
    }
    return web.FileResponse(path, headers=headers)


async def cancel(request: web.Request) -> web.Response:
    uploads, peer, transfer_id = _names(request)
    await request.app[UI].body(request, ANNOUNCE_BYTES)
    transfer = await uploads.cancel(peer, transfer_id)
    return web.json_response({"file": views.file_json(transfer)})


async def decline(request: web.Request) -> web.Response:
    uploads, peer, transfer_id = _names(request)
    await request.app[UI].body(request, ANNOUNCE_BYTES)
    transfer = await uploads.decline(peer, transfer_id)
    return web.json_response({"file": views.file_json(transfer)})

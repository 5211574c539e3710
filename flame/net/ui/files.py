"""The browser's file routes (docs/UI_API.md, "Files"): announce, upload (streamed), look, fetch,
cancel and decline. Handlers are thin: check, call flame.files, answer.

A served file never runs: it is an attachment unless its magic bytes prove an inline image, audio
or video type, always with nosniff and a CSP that allows nothing (DESIGN §9).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from pydantic import Field

from flame import files
from flame.core.files import OCTET_STREAM, content_disposition, media_class
from flame.core.models import Wire, check_username
from flame.errors import NotFound
from flame.net.http import parse_model, read_body
from flame.parts import Parts

UPLOAD_ROUTE = "ui_file_upload"  # the one UI route whose body is not JSON (net/ui/guard.py)
FILE_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
ANNOUNCE_BYTES = 16 * 1024
PARTS = web.AppKey("file_parts", Parts)
CheckSession = Callable[[web.Request], str]


class SessionCheck:
    """The UI's session check, handed over by ui.api.build (it owns the sessions)."""

    def __init__(self, check: CheckSession) -> None:
        self.check = check


SESSION = web.AppKey("file_session_check", SessionCheck)


class AnnounceBody(Wire):
    name: str = Field(max_length=4096)
    size: int
    type: str = Field(default="", max_length=255)


def _names(request: web.Request) -> tuple[Parts, str, str]:
    """Check the session; the peer's name and the transfer id from the path."""
    request.app[SESSION].check(request)
    name = request.match_info["name"]
    try:
        peer = check_username(name)
    except ValueError as exc:
        raise NotFound(f"There is no user named {name!r}.", code="unknown_recipient") from exc
    transfer_id = request.match_info.get("id", "")
    if len(transfer_id) > 64:
        raise NotFound("There is no such file in this conversation.", code="unknown_file")
    return request.app[PARTS], peer, transfer_id


async def announce(request: web.Request) -> web.Response:
    parts, peer, _ = _names(request)
    body = parse_model(AnnounceBody, await read_body(request, ANNOUNCE_BYTES))
    transfer = await files.begin_upload(parts, peer, body.name, body.size, body.type)
    return web.json_response({"file": transfer.to_ui()}, status=201)


async def upload(request: web.Request) -> web.Response:
    parts, peer, transfer_id = _names(request)
    message, transfer = await files.take_upload(
        parts, peer, transfer_id, request.content_length, request.content
    )
    return web.json_response(
        {"message": message.to_ui() | {"file": transfer.to_ui()}, "file": transfer.to_ui()},
        status=201,
    )


async def view(request: web.Request) -> web.Response:
    parts, peer, transfer_id = _names(request)
    transfer = await files.find(parts, peer, transfer_id)
    return web.json_response({"file": transfer.to_ui()})


async def content(request: web.Request) -> web.FileResponse:
    parts, peer, transfer_id = _names(request)
    transfer = await files.find(parts, peer, transfer_id)
    path = files.content_path(parts, transfer)
    inline = media_class(transfer.media_type) is not None and request.query.get("download") != "1"
    headers = {
        "Content-Type": (transfer.media_type or OCTET_STREAM) if inline else OCTET_STREAM,
        "Content-Disposition": content_disposition(transfer.name, inline=inline),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FILE_CSP,
    }
    return web.FileResponse(path, headers=headers)


async def cancel(request: web.Request) -> web.Response:
    parts, peer, transfer_id = _names(request)
    await read_body(request, ANNOUNCE_BYTES)
    transfer = await files.cancel(parts, peer, transfer_id)
    return web.json_response({"file": transfer.to_ui()})


async def decline(request: web.Request) -> web.Response:
    parts, peer, transfer_id = _names(request)
    await read_body(request, ANNOUNCE_BYTES)
    transfer = await files.decline(parts, peer, transfer_id)
    return web.json_response({"file": transfer.to_ui()})


def add_routes(app: web.Application, parts: Parts, check_session: CheckSession) -> None:
    app[PARTS] = parts
    app[SESSION] = SessionCheck(check_session)
    base = "/ui/api/conversations/{name}/files"
    app.router.add_post(base, announce)
    app.router.add_get(base + "/{id}", view)
    app.router.add_put(base + "/{id}/content", upload, name=UPLOAD_ROUTE)
    app.router.add_get(base + "/{id}/content", content)
    app.router.add_post(base + "/{id}/cancel", cancel)
    app.router.add_post(base + "/{id}/decline", decline)

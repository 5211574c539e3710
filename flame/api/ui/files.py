"""The browser's file routes (docs/UI_API.md, "Files"): announce, upload (streamed), look, fetch,
cancel and decline.

A served file never runs: it is an attachment unless its magic bytes prove an inline image, audio
or video type, always with nosniff and a CSP that allows nothing (docs/UI_API.md).
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from pydantic import Field

from flame.api.ui import views
from flame.api.ui.state import UI, path_name
from flame.core.files import OCTET_STREAM, content_disposition, media_class
from flame.core.models import MAX_CAPTION, Wire
from flame.errors import FlameError, NotFound, RequestError
from flame.net.http import parse_model
from flame.services.files.uploads import Uploads
from flame.store.files import Transfer

log = logging.getLogger("flame.files")
UPLOAD_ROUTE = "ui_file_upload"  # the one UI route whose body is not JSON (api/ui/guard.py)
FILE_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
ANNOUNCE_BYTES = 16 * 1024 + 6 * MAX_CAPTION  # a caption's every character may be escaped
TRANSFER_ID_MAX_CHARS = 64


class AnnounceBody(Wire):
    name: str = Field(max_length=4096)
    size: int
    type: str = Field(default="", max_length=255)
    caption: str = ""  # what the user wrote with the file; its length is the service's to check


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
    transfer = await uploads.begin_upload(peer, body.name, body.size, body.type, body.caption)
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


async def content(request: web.Request) -> web.StreamResponse:
    """The plaintext of a stored file (kept sealed at rest, decrypted as it is sent), whole or the
    one byte range asked for (audio and video seek with them)."""
    uploads, peer, transfer_id = _names(request)
    return await serve_content(request, uploads, await uploads.find(peer, transfer_id))


async def serve_content(
    request: web.Request, uploads: Uploads, found: Transfer
) -> web.StreamResponse:
    """A stored file's plaintext as content (whole or a range), never as something that runs."""
    transfer = uploads.servable(found)
    inline = media_class(transfer.media_type) is not None and request.query.get("download") != "1"
    span = byte_range(request.headers.get("Range"), transfer.size)
    start, end = span or (0, transfer.size)
    response = web.StreamResponse(
        status=200 if span is None else 206,
        headers={
            "Content-Type": (transfer.media_type or OCTET_STREAM) if inline else OCTET_STREAM,
            "Content-Disposition": content_disposition(transfer.name, inline=inline),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": FILE_CSP,
            "Accept-Ranges": "bytes",
        },
    )
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{transfer.size}"
    response.content_length = end - start
    pieces = uploads.content(transfer, start, end)
    await response.prepare(request)
    if request.method != "HEAD":
        try:
            async for piece in pieces:
                await response.write(piece)
        except FlameError as exc:  # the stored file is damaged: the answer can only be cut short
            log.warning("could not serve %s: %s", transfer.transfer_id, exc.message)
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range a `Range` header asks of a file of `size` bytes, as (start, end), end
    excluded; None for the whole file: no header, or one that RFC 9110 lets a server ignore
    (several ranges, another unit, bad syntax). Raises RequestError (416) for a range that lies
    wholly past the end."""
    if header is None or not header.startswith("bytes="):
        return None
    first, dash, last = header.removeprefix("bytes=").strip().partition("-")
    digits = re.compile(r"[0-9]{0,18}")
    if not dash or not digits.fullmatch(first) or not digits.fullmatch(last) or first == last == "":
        return None
    if first == "":  # the last N bytes
        if int(last) == 0:
            raise _unsatisfiable(size)
        return (max(0, size - int(last)), size)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return (start, size if last == "" else min(size, int(last) + 1))


def _unsatisfiable(size: int) -> RequestError:
    return RequestError(
        f"The range lies past the end of the file ({size} bytes).",
        status=416,
        code="range_not_satisfiable",
        size=size,
    )


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

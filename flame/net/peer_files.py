"""The remote API of file transfers (PROTOCOL.md §11.3, §11.4): what the receiver holds, and the
streaming chunk endpoint. Signed requests only; the chunk body is signed as UNSIGNED-PAYLOAD and
authenticated chunk by chunk (AES-256-GCM under the file key) and by the upload token.

Every check that can refuse a request runs before a byte of its body is read.
"""

from __future__ import annotations

from aiohttp import web

from flame.core.encoding import b64d
from flame.core.files import TRANSFER_ID_BYTES
from flame.errors import BadRequest, Forbidden, LengthRequired, LockedError
from flame.net.file_client import TOKEN_HEADER
from flame.net.http import json_error
from flame.parts import Parts
from flame.roster import lookup_identity_key
from flame.store import blocked as blocked_store
from flame.transfers import incoming
from flame.transfers.incoming import TransferRefused

PARTS = web.AppKey("file_parts", Parts)
LOCKED_RETRY_S = 30
BUSY_RETRY_S = 2


async def _caller(request: web.Request) -> tuple[Parts, str, str, str]:
    """Verify the signature (streamed: UNSIGNED-PAYLOAD), then who may ask: the caller, the
    transfer id and the upload token."""
    parts = request.app[PARTS]
    caller = await parts.verifier.verify(
        request,
        b"",
        lambda name: lookup_identity_key(parts, name),
        unsigned_body=request.method == "PUT",
    )
    if parts.identity is None:
        raise LockedError("This daemon is locked; its user has not logged in yet.")
    if await blocked_store.is_blocked(parts.db, caller):
        raise Forbidden("The recipient does not accept files from you.")
    transfer_id = request.match_info["transfer_id"]
    try:
        b64d(transfer_id, length=TRANSFER_ID_BYTES, what="transfer id")
    except BadRequest as exc:
        raise TransferRefused(exc.message, status=404, code="unknown_transfer") from exc
    token = request.headers.get(TOKEN_HEADER)
    if token is None:
        raise TransferRefused(
            f"The {TOKEN_HEADER} header is missing.", status=403, code="bad_token"
        )
    return parts, caller, transfer_id, token


async def status(request: web.Request) -> web.Response:
    try:
        parts, caller, transfer_id, token = await _caller(request)
        transfer = await incoming.transfer_for(parts, caller, transfer_id, token)
    except TransferRefused as exc:
        return _refused(exc)
    except LockedError as exc:
        return _locked(exc)
    return web.json_response(incoming.status_of(transfer))


async def chunks(request: web.Request) -> web.Response:
    try:
        parts, caller, transfer_id, token = await _caller(request)
        transfer = await incoming.transfer_for(parts, caller, transfer_id, token)
        incoming.check_open(transfer)
        raw_start = request.query.get("start", "")
        if not (raw_start.isascii() and raw_start.isdigit()) or len(raw_start) > 12:
            raise BadRequest("'start' must be a chunk index (digits).")
        if request.content_length is None:
            raise LengthRequired("Send chunks with a Content-Length.")
        start, length = int(raw_start), request.content_length
        incoming.chunk_range(transfer, start, length)  # refused before any byte is read
        result = await incoming.take_chunks(parts, transfer, start, length, request.content)
    except TransferRefused as exc:
        return _refused(exc)
    except LockedError as exc:
        return _locked(exc)
    return web.json_response(result)


def _refused(exc: TransferRefused) -> web.Response:
    response = json_error(exc.status, exc.code, exc.message, **exc.extra)
    if exc.code == "busy":
        response.headers["Retry-After"] = str(BUSY_RETRY_S)
    return response


def _locked(exc: LockedError) -> web.Response:
    response = json_error(503, exc.code, exc.message)
    response.headers["Retry-After"] = str(LOCKED_RETRY_S)
    return response


def add_routes(app: web.Application, parts: Parts, prefix: str) -> None:
    app[PARTS] = parts
    app.router.add_get(prefix + "/files/{transfer_id}", status)
    app.router.add_put(prefix + "/files/{transfer_id}/chunks", chunks)

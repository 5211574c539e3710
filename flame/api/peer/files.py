"""The remote API of file transfers (PROTOCOL.md §11.3, §11.4): what the receiver holds, and the
streaming chunk endpoint. Signed requests only; the chunk body is signed as UNSIGNED-PAYLOAD and
authenticated chunk by chunk (AES-256-GCM under the file key) and by the upload token.

Every check that can refuse a request runs before a byte of its body is read.
"""

from __future__ import annotations

from aiohttp import web

from flame.api.peer.state import PEER
from flame.errors import BadRequest, LengthRequired
from flame.net.peer_client import TOKEN_HEADER
from flame.services.files import chunks as chunk_rules
from flame.services.files.chunks import Chunks
from flame.store.files import Transfer

START_DIGITS_MAX = 12


async def _transfer(request: web.Request) -> tuple[Chunks, Transfer]:
    state = request.app[PEER]
    caller = await state.caller(request, unsigned_body=request.method == "PUT")
    chunks = state.services.chunks
    transfer = await chunks.transfer_for(
        caller, request.match_info["transfer_id"], request.headers.get(TOKEN_HEADER)
    )
    return chunks, transfer


async def status(request: web.Request) -> web.Response:
    _, transfer = await _transfer(request)
    return web.json_response(chunk_rules.status_of(transfer))


async def put_chunks(request: web.Request) -> web.Response:
    chunks, transfer = await _transfer(request)
    chunk_rules.check_open(transfer)
    raw_start = request.query.get("start", "")
    if not (raw_start.isascii() and raw_start.isdigit()) or len(raw_start) > START_DIGITS_MAX:
        raise BadRequest("'start' must be a chunk index (digits).")
    if request.content_length is None:
        raise LengthRequired("Send chunks with a Content-Length.")
    start, length = int(raw_start), request.content_length
    chunk_rules.chunk_range(transfer, start, length)  # refused before any byte is read
    return web.json_response(await chunks.take_chunks(transfer, start, length, request.content))

"""The chunks of a group file, served by a member or the author who holds them to a member the
file was sent to (PROTOCOL.md §19.7). Signed requests only; every check runs before a byte is
sent, and the chunks go as they are stored: sealed under the file key."""

from __future__ import annotations

import logging

from aiohttp import web

from flame.api.peer.state import PEER
from flame.errors import FlameError
from flame.net.peer_client import TOKEN_HEADER

log = logging.getLogger("flame.transfers")


async def get_chunks(request: web.Request) -> web.StreamResponse:
    state = request.app[PEER]
    caller = await state.caller(request)
    files = state.services.group_files
    _, transfer = await files.holding(
        caller,
        request.match_info["author"],
        request.match_info["transfer_id"],
        request.headers.get(TOKEN_HEADER),
    )
    transfer, start, end = await files.held_range(transfer, request.query.get("start", ""))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = transfer.layout.sealed_bytes(start, end)
    chunks = files.sealed_chunks(transfer, start, end)
    try:
        first = await anext(chunks)  # the copy is opened before the answer starts
        await response.prepare(request)
        try:
            await response.write(first)
            async for sealed in chunks:
                await response.write(sealed)
            await response.write_eof()
        except (ConnectionError, FlameError) as exc:  # the fetcher went, or our copy is damaged
            log.info("serving %s ended early: %s", transfer.transfer_id, exc)
            if request.transport is not None:
                request.transport.close()
    finally:
        await chunks.aclose()
    return response

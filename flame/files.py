"""Files from the user's side (docs/UI_API.md, "Files"): the browser's upload streamed to disk and
hashed, the offer sent through the outbox, cancel and decline, and what the UI may see.

The transfer between daemons is flame.transfers; the wire format is PROTOCOL.md §11.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from aiohttp import StreamReader

from flame.core.encoding import b64e
from flame.core.envelope import new_message_id
from flame.core.files import (
    SNIFF_BYTES,
    normalize_media_type,
    sanitize_name,
    sniff_media,
)
from flame.core.models import FileCancelBody, FileDeclineBody, FileOfferBody
from flame.errors import (
    BadRequest,
    Conflict,
    FlameError,
    LengthRequired,
    NotFound,
    RequestError,
    TooLarge,
)
from flame.messaging import recipient_contact, send_inner
from flame.parts import Parts
from flame.sealing import seal_control
from flame.store import contacts as contact_store
from flame.store import files as file_store
from flame.store import outbox as outbox_store
from flame.store.files import Transfer
from flame.store.messages import Message
from flame.transfers.common import (
    IO_BYTES,
    Progress,
    new_stored_name,
    publish_state,
    remove_files,
    run_blocking,
    stored_path,
)
from flame.transfers.incoming import close_transfer, message_view

log = logging.getLogger("flame.files")


async def begin_upload(
    parts: Parts, peer: str, name: str, size: int, declared_type: str
) -> Transfer:
    """Record a file the browser is about to upload. Refused here, before any byte is sent, when
    it is empty or over the limit, or the recipient cannot be written to."""
    parts.require_identity()
    limit = parts.settings.files.max_file_bytes
    if size < 1:
        raise BadRequest("The file is empty.", code="empty_file")
    if size > limit:
        raise TooLarge(
            f"The file is larger than the limit of {limit} bytes.", code="file_too_large"
        )
    await recipient_contact(parts, peer)
    transfer = Transfer(
        peer=peer,
        direction="out",
        transfer_id=new_message_id(),  # 16 random bytes, as a message id
        message_id=None,
        name=sanitize_name(name),
        size=size,
        declared_type=normalize_media_type(declared_type),
        media_type=None,
        sha256=None,
        file_key=os.urandom(32),
        upload_token=os.urandom(32),
        chunk_bytes=parts.settings.files.chunk_bytes,
        stored_name=new_stored_name("out"),
        state="uploading",
        held_bytes=0,
        sent_bytes=0,
        attempts=0,
        next_attempt_at=0.0,
        error=None,
        created_at=parts.clock.now(),
        completed_at=None,
    )
    await file_store.insert(parts.db, transfer)
    publish_state(parts, transfer)
    return transfer


async def take_upload(
    parts: Parts, peer: str, transfer_id: str, length: int | None, content: StreamReader
) -> tuple[Message, Transfer]:
    """Stream the browser's bytes to our copy, hashing as they come (a thread does the hashing
    and writing, a megabyte at a time), then offer the file. Memory stays at about a megabyte."""
    transfer = await find(parts, peer, transfer_id, direction="out")
    if transfer.state != "uploading":
        raise Conflict(f"This file is {transfer.state}, not waiting for its bytes.")
    if length is None:
        raise LengthRequired("Send the file with a Content-Length.")
    if length != transfer.size:
        raise BadRequest(
            f"The body is {length} bytes, but the file was announced as {transfer.size}.",
            code="size_mismatch",
        )
    key = transfer.key
    if key in parts.files.uploads:
        raise Conflict("This file is already being uploaded.", code="busy")
    stop = parts.files.uploads[key] = asyncio.Event()
    try:
        digest, head = await _receive(parts, transfer, content, stop)
    except BaseException as exc:
        reason = "The upload was interrupted; send the file again."
        if await file_store.close(parts.db, key, "failed", reason, parts.clock.now()):
            remove_files(parts, transfer)
            publish_state(parts, (await file_store.get(parts.db, *key)) or transfer)
        if isinstance(exc, RequestError | asyncio.CancelledError):
            raise
        if isinstance(exc, Exception):
            raise BadRequest(reason) from exc
        raise
    finally:
        del parts.files.uploads[key]
    return await _offer(parts, transfer, digest, head)


async def _receive(
    parts: Parts, transfer: Transfer, content: StreamReader, stop: asyncio.Event
) -> tuple[bytes, bytes]:
    partial = stored_path(parts, transfer, partial=True)
    fd = await run_blocking(os.open, partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    hasher = hashlib.sha256()
    received = 0
    head = b""
    progress = Progress(parts, transfer, "upload", 0)

    def write(data: bytes, offset: int) -> None:
        hasher.update(data)
        os.pwrite(fd, data, offset)

    try:
        pending = bytearray()
        async for piece in content.iter_any():
            if stop.is_set():
                raise Conflict("The upload was cancelled.", code="transfer_closed")
            pending += piece
            if len(head) < SNIFF_BYTES:
                head = bytes(pending[:SNIFF_BYTES]) if not head else head
            if len(pending) >= IO_BYTES:
                data, pending = bytes(pending), bytearray()
                await run_blocking(write, data, received)
                received += len(data)
                progress.update(received)
        if pending:
            await run_blocking(write, bytes(pending), received)
            received += len(pending)
        if received != transfer.size or stop.is_set():
            raise BadRequest("The upload ended early.")
        progress.update(received, final=True)
        await run_blocking(os.fsync, fd)
    finally:
        os.close(fd)
    await run_blocking(os.replace, partial, stored_path(parts, transfer))
    return hasher.digest(), head


async def _offer(
    parts: Parts, transfer: Transfer, digest: bytes, head: bytes
) -> tuple[Message, Transfer]:
    """The file is ours and durable: record its hash and send the offer (PROTOCOL.md §11.2)."""
    media_type = sniff_media(head)
    key = transfer.key
    inline = transfer.size <= parts.settings.files.relay_max_bytes  # at most INLINE_MAX_BYTES
    if not await file_store.finish_upload(parts.db, key, digest, media_type, inline=inline):
        remove_files(parts, transfer)
        raise Conflict("The upload was cancelled.", code="transfer_closed")
    data = None
    if inline:  # small: the offer carries the file, and relays can hold it (PROTOCOL.md §11.6)
        data = b64e(await run_blocking(stored_path(parts, transfer).read_bytes))
    body = FileOfferBody(
        transfer_id=transfer.transfer_id,
        name=transfer.name,
        size=transfer.size,
        media_type=media_type or transfer.declared_type,
        sha256=b64e(digest),
        key=b64e(transfer.file_key),
        token=b64e(transfer.upload_token),
        chunk_bytes=transfer.chunk_bytes,
        data=data,
    )
    try:
        message = await send_inner(parts, transfer.peer, "file_offer", body)
    except FlameError as exc:
        await close_transfer(parts, key, "failed", exc.message)
        raise
    await file_store.set_message(parts.db, key, message.id)
    offered = await find(parts, transfer.peer, transfer.transfer_id, direction="out")
    if not offered.is_open:  # cancelled while the offer was being queued: take it back
        await _send_control(parts, offered.peer, "file_cancel", offered.transfer_id)
    parts.files.wake.set()
    publish_state(parts, offered)
    return message, offered


async def cancel(parts: Parts, peer: str, transfer_id: str) -> Transfer:
    """The sender stops a file: nothing more is sent, and the recipient is told."""
    transfer = await find(parts, peer, transfer_id, direction="out")
    if not await close_transfer(parts, transfer.key, "cancelled", "You cancelled it."):
        raise Conflict(f"This file is already {transfer.state}.", code="transfer_closed")
    if transfer.message_id is not None:
        await _send_control(parts, peer, "file_cancel", transfer_id)
    return await find(parts, peer, transfer_id, direction="out")


async def decline(parts: Parts, peer: str, transfer_id: str) -> Transfer:
    """The recipient refuses a file: what arrived is deleted, and the sender is told."""
    transfer = await find(parts, peer, transfer_id, direction="in")
    if not await close_transfer(parts, transfer.key, "declined", "You declined it."):
        raise Conflict(f"This file is already {transfer.state}.", code="transfer_closed")
    await _send_control(parts, peer, "file_decline", transfer_id)
    return await find(parts, peer, transfer_id, direction="in")


async def _send_control(parts: Parts, peer: str, kind: str, transfer_id: str) -> None:
    """Queue a control message (sequence 0, not shown in the conversation) in the outbox, as
    receipts are. Best effort: when it cannot be sealed (the peer's key changed), the peer still
    learns it from the streaming endpoint's `transfer_closed` (PROTOCOL.md §11.5)."""
    body = (
        FileCancelBody(transfer_id=transfer_id)
        if kind == "file_cancel"
        else FileDeclineBody(transfer_id=transfer_id)
    )
    contact = await contact_store.get_contact(parts.db, peer)
    if contact is None or contact.key_changed:
        log.warning("could not tell %s about %s: no usable key", peer, transfer_id)
        return
    envelope = seal_control(parts, contact, kind, body)
    queued = outbox_store.Queued(f"{kind}:{envelope.id}", kind, peer, envelope)
    async with parts.db.transaction() as conn:
        await outbox_store.enqueue(
            conn, [queued], parts.clock.now(), parts.settings.daemon.message_ttl_s
        )
    parts.wake_outbox.set()


async def find(
    parts: Parts, peer: str, transfer_id: str, *, direction: str | None = None
) -> Transfer:
    found = [
        t
        for t in await file_store.with_peer(parts.db, peer, transfer_id)
        if direction is None or t.direction == direction
    ]
    if not found:
        raise NotFound("There is no such file in this conversation.", code="unknown_file")
    return found[0]


async def message_views(parts: Parts, messages: list[Message]) -> list[dict[str, Any]]:
    """Messages for the UI, each file offer with its transfer's state."""
    transfers = await file_store.by_messages(
        parts.db, [m.id for m in messages if m.kind == "file_offer"]
    )
    return [message_view(m, transfers.get(m.id)) for m in messages]


def content_path(parts: Parts, transfer: Transfer) -> Path:
    """Our copy of a file, if it may be shown: a received file only once verified."""
    servable = transfer.state == "complete" or (
        transfer.direction == "out" and transfer.sha256 is not None and transfer.is_open
    )
    path = stored_path(parts, transfer)
    if not servable or not path.is_file():
        raise NotFound("This file is not here (yet).", code="file_not_ready")
    return path

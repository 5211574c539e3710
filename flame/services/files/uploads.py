"""Files from the user's side (docs/UI_API.md, "Files"): the browser's upload streamed to disk and
hashed, the offer sent through the outbox, cancel and decline, and what may be served.

The transfer between daemons is offers.py, chunks.py and sender.py; the wire format PROTOCOL.md §11.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import StreamReader

from flame.core.encoding import b64e
from flame.core.envelope import new_message_id
from flame.core.files import SNIFF_BYTES, normalize_media_type, sanitize_name, sniff_media
from flame.core.models import MAX_CAPTION, FileCancelBody, FileDeclineBody, FileOfferBody
from flame.errors import (
    BadRequest,
    Conflict,
    FlameError,
    LengthRequired,
    NotFound,
    RequestError,
    TooLarge,
)
from flame.services.contacts import Contacts
from flame.services.context import Context
from flame.services.features import PeerFeatures
from flame.services.files.atrest import cipher_of, plaintext, read_whole, write_chunk
from flame.services.files.disk import (
    SyncBehind,
    new_stored_name,
    remove_files,
    run_blocking,
    stored_path,
)
from flame.services.files.runtime import FileRuntime, Growing
from flame.services.messaging import Messaging
from flame.services.sealing import seal_control
from flame.store import files as file_store
from flame.store import outbox as outbox_store
from flame.store.files import Transfer
from flame.store.messages import Message

log = logging.getLogger("flame.files")
SYNC_BYTES = 32 * 1024 * 1024  # an upload is fsynced this often as it is written
STREAM_FEATURE = "files-stream"  # the peer takes an offer whose hash trails its chunks (§11.4)
# After each chunk stored: how many are, and the file's first bytes.
Stored = Callable[[int, bytes], Awaitable[None]]


@dataclass(eq=False)
class Uploads:
    """The browser's side of this user's files: upload, offer, cancel, decline, serve."""

    ctx: Context
    runtime: FileRuntime
    messaging: Messaging
    contacts: Contacts
    features: PeerFeatures

    async def begin_upload(
        self,
        peer: str,
        name: str,
        size: int,
        declared_type: str,
        caption: str = "",
        *,
        to_group: bool = False,
    ) -> Transfer:
        """Record a file the browser is about to upload, with what the user wrote with it. Refused
        here, before any byte is sent, when it is empty or over the limit, the caption too long,
        or the recipient cannot be written to. A group's file (PROTOCOL.md §19.7) is this user's
        own copy: `peer` is this user, and the group service checks the group."""
        self.ctx.keys.identity()
        limit = self.ctx.settings.files.max_file_bytes
        if size < 1:
            raise BadRequest("The file is empty.", code="empty_file")
        if size > limit:
            raise TooLarge(
                f"The file is larger than the limit of {limit} bytes.", code="file_too_large"
            )
        if len(caption) > MAX_CAPTION:
            raise TooLarge(
                f"The caption is longer than {MAX_CAPTION} characters.", code="caption_too_long"
            )
        if not to_group:
            await self.contacts.recipient(peer)
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
            chunk_bytes=self.ctx.settings.files.chunk_bytes,
            stored_name=new_stored_name("out"),
            state="uploading",
            created_at=self.ctx.clock.now(),
            caption=caption if caption.strip() else "",
        )
        await file_store.insert(self.ctx.db, transfer)
        self.runtime.publish(transfer)
        return transfer

    async def take_upload(
        self, peer: str, transfer_id: str, length: int | None, content: StreamReader
    ) -> tuple[Message, Transfer]:
        """Stream the browser's bytes to our copy, hashing as they come (a thread does the hashing
        and writing, a megabyte at a time), then offer the file. Memory stays at about a megabyte."""
        transfer = await self.find(peer, transfer_id, direction="out")
        if await self._streams(transfer, length):
            return await self._stream_upload(transfer, length, content)
        digest, head = await self.receive_upload(transfer, length, content)
        return await self._offer(transfer, digest, head)

    async def _streams(self, transfer: Transfer, length: int | None) -> bool:
        """Whether this upload goes to the peer while it arrives (PROTOCOL.md §11.4): a file too
        large to travel inline, to a peer whose daemon takes an offer without its hash."""
        if transfer.state != "uploading" or length != transfer.size:
            return False  # refused by receive_upload, as ever
        if transfer.size <= max(self.ctx.settings.files.relay_max_bytes, transfer.chunk_bytes):
            return False  # inline, or one chunk: nothing to overlap
        contact = await self.contacts.get(transfer.peer)
        return contact is not None and await self.features.speaks(contact, STREAM_FEATURE)

    async def _stream_upload(
        self, transfer: Transfer, length: int | None, content: StreamReader
    ) -> tuple[Message, Transfer]:
        """Offer the file as soon as its first chunk is stored, then let the sender follow the
        upload chunk by chunk; its hash, once the last has come, trails them (§11.4)."""
        key = transfer.key
        growing = self.runtime.growing[key] = Growing()
        offered: list[Message] = []

        async def stored(chunks: int, head: bytes) -> None:
            if not offered:
                offered.append(await self._offer_streamed(transfer, head))
            growing.stored(chunks)

        try:
            digest, head = await self.receive_upload(transfer, length, content, stored)
            if not await file_store.finish_upload(
                self.ctx.db, key, digest, sniff_media(head), inline=False
            ):
                raise await self._stopped(transfer)
            growing.stored(transfer.layout.count, digest)
        finally:
            if self.runtime.growing.get(key) is growing:
                del self.runtime.growing[key]
        return offered[0], await self.find(transfer.peer, transfer.transfer_id, direction="out")

    async def _offer_streamed(self, transfer: Transfer, head: bytes) -> Message:
        """The offer without `sha256` (PROTOCOL.md §11.2), sent while the upload goes on."""
        if not await file_store.start_streaming(self.ctx.db, transfer.key):
            raise await self._stopped(transfer)
        body = self._offer_body(transfer, sniff_media(head), None, None)
        message = await self.messaging.send_inner(transfer.peer, "file_offer", body)
        await file_store.set_message(self.ctx.db, transfer.key, message.id)
        offered = await self.find(transfer.peer, transfer.transfer_id, direction="out")
        if not offered.is_open:  # cancelled while the offer was being queued: take it back
            await self.send_control(offered.peer, "file_cancel", offered.transfer_id)
            raise await self._stopped(transfer)
        self.runtime.wake.set()
        self.runtime.publish(offered)
        return message

    async def receive_upload(
        self,
        transfer: Transfer,
        length: int | None,
        content: StreamReader,
        stored: Stored | None = None,
    ) -> tuple[bytes, bytes]:
        """The browser's bytes of an announced file, sealed and durable: their SHA-256 and first
        bytes. A failed upload closes the transfer."""
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
        if key in self.runtime.uploads:
            raise Conflict("This file is already being uploaded.", code="busy")
        stop = self.runtime.uploads[key] = asyncio.Event()
        try:
            digest, head = await self._receive(transfer, content, stop, stored)
        except BaseException as exc:
            reason = "The upload was interrupted; send the file again."
            if await self.runtime.close(key, "failed", reason):
                offered = await file_store.get(self.ctx.db, *key)
                if offered is not None and offered.message_id is not None:  # streamed: take it back
                    await self.send_control(offered.peer, "file_cancel", offered.transfer_id)
            if isinstance(exc, RequestError | asyncio.CancelledError):
                raise
            if isinstance(exc, Exception):
                raise BadRequest(reason) from exc
            raise
        finally:
            del self.runtime.uploads[key]
        return digest, head

    async def _receive(
        self,
        transfer: Transfer,
        content: StreamReader,
        stop: asyncio.Event,
        stored: Stored | None,
    ) -> tuple[bytes, bytes]:
        """Seal each chunk as it completes and write it at its place (at rest, files are sealed:
        services/files/atrest.py), hashing the plaintext; memory stays at about a chunk. An
        fsync every SYNC_BYTES, beside the writes, gives their pages back (disk.SyncBehind)."""
        partial = stored_path(self.ctx.settings, transfer, partial=True)
        fd = await run_blocking(os.open, partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        layout, cipher = transfer.layout, cipher_of(transfer)
        hasher = hashlib.sha256()
        received = 0
        head = b""
        progress = self.runtime.progress(transfer, "upload", 0)
        behind = SyncBehind(fd, SYNC_BYTES)

        def write(chunk: bytes, index: int) -> None:
            hasher.update(chunk)
            write_chunk(fd, cipher, layout, index, chunk)

        try:
            pending = bytearray()
            async for piece in content.iter_any():
                if stop.is_set():
                    raise await self._stopped(transfer)
                if received + len(pending) + len(piece) > transfer.size:
                    raise BadRequest("The upload is longer than announced.")
                pending += piece
                if len(head) < SNIFF_BYTES:
                    head = bytes(pending[:SNIFF_BYTES]) if not head else head
                while len(pending) >= layout.chunk_bytes:
                    chunk = bytes(pending[: layout.chunk_bytes])
                    del pending[: layout.chunk_bytes]
                    await run_blocking(write, chunk, received // layout.chunk_bytes)
                    received += len(chunk)
                    progress.update(received)
                    behind.written(layout.sealed_offset(received // layout.chunk_bytes))
                    if stored is not None and received < transfer.size:
                        await stored(received // layout.chunk_bytes, head)
            if pending:
                await run_blocking(write, bytes(pending), received // layout.chunk_bytes)
                received += len(pending)
            if stop.is_set():
                raise await self._stopped(transfer)
            if received != transfer.size:
                raise BadRequest("The upload ended early.")
            progress.update(received, final=True)
            await behind.settle()
            await run_blocking(os.fsync, fd)
        finally:
            with contextlib.suppress(Exception):
                await behind.settle()  # its thread uses the descriptor
            os.close(fd)
        await run_blocking(os.replace, partial, stored_path(self.ctx.settings, transfer))
        return hasher.digest(), head

    async def _stopped(self, transfer: Transfer) -> Conflict:
        """Why an upload stopped as it arrived: the reason its transfer closed with."""
        closed = await file_store.get(self.ctx.db, *transfer.key)
        reason = closed.error if closed is not None else None
        return Conflict(reason or "The upload was cancelled.", code="transfer_closed")

    async def _offer(
        self, transfer: Transfer, digest: bytes, head: bytes
    ) -> tuple[Message, Transfer]:
        """The file is ours and durable: record its hash and send the offer (PROTOCOL.md §11.2)."""
        key = transfer.key
        body = await self.offer_of(transfer, digest, head)
        try:
            message = await self.messaging.send_inner(transfer.peer, "file_offer", body)
        except FlameError as exc:
            await self.runtime.close(key, "failed", exc.message)
            raise
        await file_store.set_message(self.ctx.db, key, message.id)
        offered = await self.find(transfer.peer, transfer.transfer_id, direction="out")
        if not offered.is_open:  # cancelled while the offer was being queued: take it back
            await self.send_control(offered.peer, "file_cancel", offered.transfer_id)
        self.runtime.wake.set()
        self.runtime.publish(offered)
        return message, offered

    async def offer_of(self, transfer: Transfer, digest: bytes, head: bytes) -> FileOfferBody:
        """Record an uploaded file's hash (it waits to be offered) and make its offer."""
        media_type = sniff_media(head)
        inline = transfer.size <= self.ctx.settings.files.relay_max_bytes  # <= INLINE_MAX_BYTES
        if not await file_store.finish_upload(
            self.ctx.db, transfer.key, digest, media_type, inline=inline
        ):
            remove_files(self.ctx.settings, transfer)
            raise await self._stopped(transfer)
        data = None
        if inline:  # small: the offer carries the file, and relays can hold it (PROTOCOL.md §11.6)
            data = b64e(await read_whole(self.ctx.settings, transfer))
        return self._offer_body(transfer, media_type, digest, data)

    @staticmethod
    def _offer_body(
        transfer: Transfer, media_type: str | None, digest: bytes | None, data: str | None
    ) -> FileOfferBody:
        return FileOfferBody(
            transfer_id=transfer.transfer_id,
            name=transfer.name,
            size=transfer.size,
            media_type=media_type or transfer.declared_type,
            sha256=None if digest is None else b64e(digest),
            key=b64e(transfer.file_key),
            token=b64e(transfer.upload_token),
            chunk_bytes=transfer.chunk_bytes,
            data=data,
            caption=transfer.caption or None,
        )

    async def cancel(self, peer: str, transfer_id: str) -> Transfer:
        """The sender stops a file: nothing more is sent, and the recipient is told."""
        transfer = await self.find(peer, transfer_id, direction="out")
        if not await self.runtime.close(transfer.key, "cancelled", "You cancelled it."):
            raise Conflict(f"This file is already {transfer.state}.", code="transfer_closed")
        if transfer.message_id is not None:
            await self.send_control(peer, "file_cancel", transfer_id)
        return await self.find(peer, transfer_id, direction="out")

    async def decline(self, peer: str, transfer_id: str) -> Transfer:
        """The recipient refuses a file: what arrived is deleted, and the sender is told."""
        transfer = await self.find(peer, transfer_id, direction="in")
        if not await self.runtime.close(transfer.key, "declined", "You declined it."):
            raise Conflict(f"This file is already {transfer.state}.", code="transfer_closed")
        await self.send_control(peer, "file_decline", transfer_id)
        return await self.find(peer, transfer_id, direction="in")

    async def send_control(self, peer: str, kind: str, transfer_id: str) -> None:
        """Queue a control message (sequence 0, not shown in the conversation) in the outbox, as
        receipts are. Best effort: when it cannot be sealed (the peer's key changed), the peer still
        learns it from the streaming endpoint's `transfer_closed` (PROTOCOL.md §11.5)."""
        body = (
            FileCancelBody(transfer_id=transfer_id)
            if kind == "file_cancel"
            else FileDeclineBody(transfer_id=transfer_id)
        )
        contact = await self.contacts.get(peer)
        if contact is None or contact.key_changed:
            log.warning("could not tell %s about %s: no usable key", peer, transfer_id)
            return
        sealed = await seal_control(self.ctx, self.messaging.sessions, contact, kind, body)
        if sealed is None:
            return
        envelope = sealed.envelope
        queued = outbox_store.Queued(f"{kind}:{envelope.id}", kind, peer, envelope, sealed.ratchet)
        async with self.ctx.db.transaction() as conn:
            await outbox_store.enqueue(
                conn, [queued], self.ctx.clock.now(), self.ctx.settings.daemon.message_ttl_s
            )
        self.ctx.wake.outbox.set()

    async def find(self, peer: str, transfer_id: str, *, direction: str | None = None) -> Transfer:
        found = [
            t
            for t in await file_store.with_peer(self.ctx.db, peer, transfer_id)
            if direction is None or t.direction == direction
        ]
        if not found:
            raise NotFound("There is no such file in this conversation.", code="unknown_file")
        return found[0]

    def servable(self, transfer: Transfer) -> Transfer:
        """The transfer, if its file may be shown: a received file only once verified."""
        servable = transfer.state == "complete" or (
            transfer.direction == "out" and transfer.sha256 is not None and transfer.is_open
        )
        if not servable or not stored_path(self.ctx.settings, transfer).is_file():
            raise NotFound("This file is not here (yet).", code="file_not_ready")
        return transfer

    def content(self, transfer: Transfer, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end-1 of a servable file's plaintext, a chunk at a time."""
        return plaintext(self.ctx.settings, self.servable(transfer), start, end)

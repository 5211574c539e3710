"""The streamed bytes of a file (PROTOCOL.md §11.3, §11.4), the recipient's side: what it holds,
and chunks verified as they are written.

Bytes land in <data>/files/in-<random>.part and become in-<random> only once the whole file's
SHA-256 matches the offer; the database's state is what the UI believes, never a file's presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader

from flame.core.encoding import b64d, b64e
from flame.core.files import SNIFF_BYTES, TAG_BYTES, TRAILER_BYTES, TRANSFER_ID_BYTES, sniff_media
from flame.errors import BadRequest, DecryptionFailed, Forbidden, TransferRefused
from flame.net.peer_client import TOKEN_HEADER
from flame.services.blocks import Blocks
from flame.services.context import Context
from flame.services.files.atrest import cipher_of, hash_prefix, held_length, read_chunk
from flame.services.files.disk import fsync_and_uncache, run_blocking, stored_path
from flame.services.files.runtime import FileRuntime, Intake
from flame.store import files as file_store
from flame.store.files import Transfer

log = logging.getLogger("flame.transfers")
CHECKPOINT_S = 0.5  # fsync and record the verified prefix at least this often while receiving
BUSY_RETRY_S = 2.0


def _token_text(transfer: Transfer) -> bytes:
    return b64e(transfer.upload_token).encode()


def status_of(transfer: Transfer) -> dict[str, Any]:
    return {
        "transfer_id": transfer.transfer_id,
        "state": transfer.state,
        "received_bytes": transfer.size if transfer.state == "complete" else transfer.held_bytes,
        "size": transfer.size,
    }


def check_open(transfer: Transfer) -> None:
    if transfer.state != "receiving":
        raise TransferRefused(
            f"This transfer is {transfer.state}; send nothing more.",
            status=410,
            code="transfer_closed",
            **status_of(transfer),
        )


def chunk_range(transfer: Transfer, start: int, length: int) -> int:
    """Check a request for chunks start.. of `length` body bytes; return the end index. A file
    offered without its hash: the body that reaches the end carries the trailer too (§11.4)."""
    layout = transfer.layout
    held = layout.held_chunks(transfer.held_bytes)
    if start != held:
        raise TransferRefused(
            f"Send from chunk {held}, the first one not held.",
            status=409,
            code="wrong_offset",
            **status_of(transfer),
        )
    remaining = layout.sealed_bytes(start)
    trailer = TRAILER_BYTES * transfer.hash_last
    if length > remaining + trailer:
        raise TransferRefused(
            f"The body runs past the file's declared size ({remaining + trailer} bytes remain).",
            status=400,
            code="past_end",
        )
    if length == remaining + trailer:
        return layout.count
    if trailer and length == remaining:
        raise TransferRefused(
            "The file's last chunk must be followed by its hash trailer.",
            status=400,
            code="missing_trailer",
        )
    whole, rest = divmod(length, layout.chunk_bytes + TAG_BYTES)
    if rest or whole == 0:
        raise TransferRefused(
            "The body must hold whole sealed chunks.", status=400, code="bad_request"
        )
    return start + whole


async def _settle(*futures: asyncio.Future[Any] | None) -> None:
    """Let threads and checkpoints that use the file descriptor end before it is closed; their
    errors were (or need not be) seen by the caller."""
    for future in futures:
        if future is not None and not future.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(future)
        elif future is not None and not future.cancelled():
            future.exception()  # retrieved: no "exception never retrieved" warning


def _held(transfer: Transfer, intake: Intake) -> dict[str, Any]:
    return {**status_of(transfer), "received_bytes": intake.hashed_bytes}


@dataclass(eq=False)
class Chunks:
    ctx: Context
    runtime: FileRuntime
    blocks: Blocks

    async def transfer_for(self, caller: str, transfer_id: str, token: str | None) -> Transfer:
        """The incoming transfer `caller` offered, if `token` is its upload token. Refused while
        locked, for a blocked caller, and for an id that cannot be one (PROTOCOL.md §11.4)."""
        self.ctx.keys.identity()
        if await self.blocks.is_blocked(caller):
            raise Forbidden("The recipient does not accept files from you.")
        try:
            b64d(transfer_id, length=TRANSFER_ID_BYTES, what="transfer id")
        except BadRequest as exc:
            raise TransferRefused(exc.message, status=404, code="unknown_transfer") from exc
        if token is None:
            raise TransferRefused(
                f"The {TOKEN_HEADER} header is missing.", status=403, code="bad_token"
            )
        transfer = await file_store.get(self.ctx.db, caller, "in", transfer_id)
        if transfer is None:
            raise TransferRefused(
                "There is no transfer with this id from you.", status=404, code="unknown_transfer"
            )
        if not hmac.compare_digest(token.encode(), _token_text(transfer)):
            raise TransferRefused("The upload token is wrong.", status=403, code="bad_token")
        return transfer

    async def take_chunks(
        self, transfer: Transfer, start: int, length: int, content: StreamReader
    ) -> dict[str, Any]:
        """Read the `length` bytes of sealed chunks from `start`, verify each, write it, and finish
        the file after the last.

        One request per transfer at a time. The verified prefix is made durable (fsync, then the
        database) every CHECKPOINT_S and when the request ends for any reason but cancellation, which
        behaves as a crash would: the next request resumes from the last checkpoint.
        """
        runtime = self.runtime
        key = transfer.key
        if key in runtime.receiving:
            raise TransferRefused(
                "Chunks for this transfer are already arriving.",
                status=409,
                code="busy",
                retry_after_s=BUSY_RETRY_S,
            )
        runtime.receiving.add(key)
        try:
            # Checked again now that this request holds the transfer: one that just ended may have
            # moved it on since the caller looked.
            current = await self._reload(transfer)
            check_open(current)
            end = chunk_range(current, start, length)
            return await self._take_chunks(current, start, end, content)
        finally:
            runtime.receiving.discard(key)

    async def _take_chunks(
        self, transfer: Transfer, start: int, end: int, content: StreamReader
    ) -> dict[str, Any]:
        key, layout = transfer.key, transfer.layout
        path = stored_path(self.ctx.settings, transfer, partial=True)
        fd = await run_blocking(os.open, path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            held = transfer.held_bytes
            cipher = cipher_of(transfer)
            # Drop anything written after the checkpoint (chunks are stored sealed, as they came).
            await run_blocking(os.ftruncate, fd, held_length(layout, held))
            intake = self.runtime.intakes.get(key)
            if intake is None or intake.hashed_bytes != held:
                intake = Intake(await run_blocking(hash_prefix, fd, cipher, layout, held), held)
                self.runtime.intakes[key] = intake
            progress = self.runtime.progress(transfer, "receive", held)
            idle_s = self.ctx.settings.files.idle_timeout_s
            loop = asyncio.get_running_loop()
            checkpoint_at = loop.time() + CHECKPOINT_S
            index = start

            def absorb(index: int, sealed: bytes) -> None:
                """In a thread: verify, write (sealed: files stay sealed at rest), hash; the
                prefix counts the chunk once written."""
                chunk = cipher.open(index, sealed)
                os.pwrite(fd, sealed, layout.sealed_offset(index))
                intake.hasher.update(chunk)
                intake.hashed_bytes += len(chunk)

            # Two things overlap with reading the socket: the thread that verifies, hashes and
            # writes the previous chunk, and a checkpoint (fsync, then the database) in flight.
            pending: asyncio.Future[None] | None = None
            flushing: asyncio.Future[bool] | None = None
            durable = held

            async def read(size: int) -> bytes:
                """The next `size` bytes of the body. A sender that waits (its user's upload still
                arriving, §11.4) gets what came made durable meanwhile, as §11.3 reports it."""
                nonlocal checkpoint_at, flushing, durable
                reading = asyncio.ensure_future(content.readexactly(size))
                try:
                    async with asyncio.timeout(idle_s):
                        while True:
                            if flushing is None:
                                wait_s = max(0.0, checkpoint_at - loop.time())
                                await asyncio.wait({reading}, timeout=wait_s)
                            else:
                                either: set[asyncio.Future[Any]] = {reading, flushing}
                                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                            if reading.done():
                                return reading.result()
                            if flushing is not None:
                                if flushing.done():
                                    if not flushing.result():  # declined or cancelled meanwhile
                                        check_open(await self._reload(transfer))
                                    flushing = None
                                continue
                            if pending is not None:
                                await pending  # DecryptionFailed: that chunk was bad
                            checkpoint_at = loop.time() + CHECKPOINT_S
                            if intake.hashed_bytes > durable:  # stalled with news: make it durable
                                durable = intake.hashed_bytes
                                flushing = asyncio.ensure_future(
                                    self._checkpoint(transfer, fd, durable)
                                )
                finally:
                    if not reading.done():
                        reading.cancel()

            try:
                try:
                    while index < end:
                        sealed = await read(layout.sealed_len(index))
                        if pending is not None:
                            await pending  # DecryptionFailed: the chunk before this one was bad
                            progress.update(intake.hashed_bytes)
                        pending = asyncio.ensure_future(run_blocking(absorb, index, sealed))
                        index += 1
                        if flushing is not None and flushing.done():
                            if not flushing.result():  # declined or cancelled meanwhile
                                check_open(await self._reload(transfer))
                            flushing = None
                        if flushing is None and loop.time() >= checkpoint_at:
                            checkpoint_at = loop.time() + CHECKPOINT_S
                            durable = intake.hashed_bytes
                            flushing = asyncio.ensure_future(
                                self._checkpoint(transfer, fd, durable)
                            )
                    if pending is not None:
                        await pending
                    if index == layout.count and transfer.hash_last:
                        sealed = await read(TRAILER_BYTES)
                        intake.trailer = cipher.open_trailer(layout.count, sealed)
                finally:
                    await _settle(pending, flushing)
            except DecryptionFailed as exc:
                await self._checkpoint(transfer, fd, intake.hashed_bytes)
                raise TransferRefused(
                    exc.message, status=400, code="bad_chunk", **_held(transfer, intake)
                ) from exc
            # ssl.SSLError: a TLS record damaged or forged on the way; the connection is gone.
            except (
                asyncio.IncompleteReadError,
                ConnectionError,
                TimeoutError,
                ssl.SSLError,
            ) as exc:
                await self._checkpoint(transfer, fd, intake.hashed_bytes)
                raise TransferRefused(
                    "The body ended early.",
                    status=400,
                    code="bad_request",
                    **_held(transfer, intake),
                ) from exc
            if index < layout.count:
                await self._checkpoint(transfer, fd, intake.hashed_bytes)
                return {**status_of(transfer), "received_bytes": intake.hashed_bytes}
            progress.update(intake.hashed_bytes, final=True)
            return await self._finish(transfer, fd, intake)
        finally:
            os.close(fd)

    async def _reload(self, transfer: Transfer) -> Transfer:
        return await file_store.get(self.ctx.db, *transfer.key) or transfer

    async def _checkpoint(self, transfer: Transfer, fd: int, held_bytes: int) -> bool:
        """fsync, then record: the database never claims bytes the disk may not have. False when the
        transfer is no longer receiving (declined or cancelled meanwhile)."""
        await run_blocking(fsync_and_uncache, fd, held_length(transfer.layout, held_bytes))
        await file_store.checkpoint(self.ctx.db, transfer.key, held_bytes)
        current = await self._reload(transfer)
        return current.state == "receiving"

    async def _finish(self, transfer: Transfer, fd: int, intake: Intake) -> dict[str, Any]:
        """Every chunk verified: the whole file's SHA-256 decides. Only then is it complete."""
        key = transfer.key
        self.runtime.intakes.pop(key, None)
        digest = intake.hasher.digest()
        expected = intake.trailer if transfer.hash_last else transfer.sha256
        assert expected is not None
        if not hmac.compare_digest(digest, expected):
            # Every chunk verified, so these are the bytes the sender sealed: its copy is not what it
            # hashed, and sending it again cannot help.
            await self.runtime.close(
                key, "failed", "The file's SHA-256 does not match the one it was sent with."
            )
            raise TransferRefused(
                "The file's SHA-256 does not match the offer; it was discarded.",
                status=422,
                code="hash_mismatch",
            )
        head = await run_blocking(read_chunk, fd, cipher_of(transfer), transfer.layout, 0)
        await run_blocking(fsync_and_uncache, fd, held_length(transfer.layout, transfer.size))
        media_type = sniff_media(head[:SNIFF_BYTES])
        partial, final = (
            stored_path(self.ctx.settings, transfer, partial=True),
            stored_path(self.ctx.settings, transfer),
        )
        try:
            await run_blocking(os.replace, partial, final)
        except FileNotFoundError:  # deleted by a cancel or decline that won the race
            check_open(await self._reload(transfer))
            raise
        now = self.ctx.clock.now()
        if not await file_store.complete_incoming(
            self.ctx.db, key, transfer.stored_name, media_type, now
        ):
            with contextlib.suppress(FileNotFoundError):
                final.unlink()
            check_open(await self._reload(transfer))
        done = await self._reload(transfer)
        log.info("received %s from %s (%d bytes, verified)", done.name, done.peer, done.size)
        self.runtime.publish(done)
        return status_of(done)

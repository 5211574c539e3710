"""The recipient's side of a transfer (PROTOCOL.md §11): offers, cancels and declines arriving as
envelopes, and chunks arriving on the streaming endpoint, verified as they are written.

Bytes land in <data>/files/in-<random>.part and become in-<random> only once the whole file's
SHA-256 matches the offer; the database's state is what the UI believes, never a file's presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import os
from typing import Any

from aiohttp import StreamReader

from flame.core.encoding import b64d, b64e
from flame.core.files import (
    SNIFF_BYTES,
    TAG_BYTES,
    TRANSFER_ID_BYTES,
    ChunkCipher,
    check_offer,
    sniff_media,
)
from flame.core.models import FileCancelBody, FileDeclineBody, FileOfferBody
from flame.errors import BadEnvelope, DecryptionFailed, Forbidden, RequestError, Unavailable
from flame.parts import Parts
from flame.receipts import delivered_receipts
from flame.store import blocked as blocked_store
from flame.store import files as file_store
from flame.store import messages as message_store
from flame.store.files import OPEN_STATES, Transfer
from flame.store.messages import Incoming, Message
from flame.transfers.common import (
    Progress,
    hash_prefix,
    new_stored_name,
    publish_state,
    remove_files,
    run_blocking,
    stored_path,
)
from flame.transfers.runtime import Intake

log = logging.getLogger("flame.transfers")
CHECKPOINT_S = 0.5  # fsync and record the verified prefix at least this often while receiving


class TransferRefused(RequestError):
    """A refusal on the streaming endpoint; `extra` goes into the JSON answer (e.g. how many bytes
    the receiver holds, so that the sender resumes from there)."""

    def __init__(self, message: str, *, status: int, code: str, **extra: Any) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.extra = extra


def message_view(message: Message, transfer: Transfer | None) -> dict[str, Any]:
    """A message for the UI; a file offer's `file` is its transfer's view when there is one."""
    view = message.to_ui()
    if transfer is not None:
        view["file"] = transfer.to_ui()
    return view


# --- offers, cancels and declines (inner kinds; messaging.RECEIVERS) ------------------------------


async def receive_file_offers(parts: Parts, items: list[Incoming]) -> list[bool | RequestError]:
    """Check every offer, then record the transfers and store the messages. The transfers go
    first: a crash in between leaves a row that the sender's retry of the same envelope finds
    again, never a message without its transfer. An inline file (§11.6) is on disk, fsynced,
    before its transfer is recorded as complete."""
    outcomes: list[bool | RequestError] = [False] * len(items)
    fresh: list[tuple[int, Incoming, Transfer]] = []
    seen: set[tuple[str, str]] = set()
    now = parts.clock.now()
    for index, item in enumerate(items):
        try:
            transfer, data = await _check_offer(parts, item, now, seen)
        except RequestError as exc:
            outcomes[index] = exc
            continue
        if data is not None:
            try:
                transfer = await _write_inline(parts, transfer, data)
            except Unavailable as exc:
                outcomes[index] = exc
                continue
        fresh.append((index, item, transfer))
    await file_store.insert_incoming(parts.db, [transfer for _, _, transfer in fresh])
    accepted = [item for _, item, _ in fresh]
    receipts = await delivered_receipts(parts, accepted)  # duplicates too (PROTOCOL.md §13.2)
    stored = await message_store.store_incoming(
        parts.db, accepted, receipts, parts.settings.daemon.message_ttl_s
    )
    for (index, _, transfer), message in zip(fresh, stored, strict=True):
        outcomes[index] = message is not None
        if message is not None:
            log.info("%s offers %s (%d bytes)", transfer.peer, transfer.transfer_id, transfer.size)
            parts.hub.publish({"type": "message", "message": message_view(message, transfer)})
            if transfer.state == "complete":  # inline: arrived whole, as a streamed file ends
                log.info(
                    "received %s from %s inline (%d bytes)",
                    transfer.name,
                    transfer.peer,
                    transfer.size,
                )
                publish_state(parts, transfer)
    if receipts:
        parts.wake_outbox.set()
    return outcomes


async def _check_offer(
    parts: Parts, item: Incoming, now: float, seen: set[tuple[str, str]]
) -> tuple[Transfer, bytes | None]:
    """The transfer an offer makes, and the inline content still to be written (None when it is
    streamed, or when this is a second delivery of an offer already recorded)."""
    author = item.inner.from_
    body = item.inner.body
    assert isinstance(body, FileOfferBody)
    if await blocked_store.is_blocked(parts.db, author):
        raise Forbidden("The recipient does not accept files from you.")
    offer = check_offer(body, parts.settings.files.max_file_bytes)
    existing = await file_store.with_peer(parts.db, author, offer.transfer_id)
    if (author, offer.transfer_id) in seen or any(t.message_id != item.key for t in existing):
        raise BadEnvelope("This transfer id is already in use.", code="duplicate_transfer")
    seen.add((author, offer.transfer_id))
    if existing:  # the same envelope again (a retry, or a relay's copy): nothing new to write
        return existing[0], None
    transfer = Transfer(
        peer=author,
        direction="in",
        transfer_id=offer.transfer_id,
        message_id=item.key,
        name=offer.name,
        size=offer.size,
        declared_type=offer.media_type,
        media_type=None,
        sha256=offer.sha256,
        file_key=offer.key,
        upload_token=offer.token,
        chunk_bytes=offer.chunk_bytes,
        stored_name=new_stored_name("in"),
        state="receiving",
        held_bytes=0,
        sent_bytes=0,
        attempts=0,
        next_attempt_at=0.0,
        error=None,
        created_at=now,
        completed_at=None,
        inline=offer.data is not None,
    )
    return transfer, offer.data


async def _write_inline(parts: Parts, transfer: Transfer, data: bytes) -> Transfer:
    """Write an inline file under its generated name and fsync it; the transfer it returns is
    complete. A crash before the database commit leaves an unreferenced file, which the next
    start removes (common.remove_strays); the sender's retry writes it again."""
    path = stored_path(parts, transfer)

    def write() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    try:
        await run_blocking(write)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        log.warning("could not store a file from %s: %s", transfer.peer, exc)
        raise Unavailable("The recipient cannot store the file right now.") from exc
    return dataclasses.replace(
        transfer,
        state="complete",
        held_bytes=transfer.size,
        media_type=sniff_media(data[:SNIFF_BYTES]),
        completed_at=transfer.created_at,
    )


async def receive_file_cancels(parts: Parts, items: list[Incoming]) -> list[bool | RequestError]:
    """The sender stopped: drop what we hold. True when it changed something.

    An inline file (§11.6) is complete from the moment its offer is stored, yet its sender cancels
    only while it does not know that (for instance the recipient was offline): the cancel, queued
    behind the offer, takes the file back."""
    outcomes: list[bool | RequestError] = []
    for item in items:
        body = item.inner.body
        assert isinstance(body, FileCancelBody)
        key = (item.inner.from_, "in", body.transfer_id)
        transfer = await file_store.get(parts.db, *key)
        closable = (*OPEN_STATES, "complete") if transfer and transfer.inline else OPEN_STATES
        outcomes.append(
            await close_transfer(
                parts, key, "cancelled", "The sender cancelled it.", only_from=closable
            )
        )
    return outcomes


async def receive_file_declines(parts: Parts, items: list[Incoming]) -> list[bool | RequestError]:
    """The recipient refused one of our files: stop sending it."""
    outcomes: list[bool | RequestError] = []
    for item in items:
        body = item.inner.body
        assert isinstance(body, FileDeclineBody)
        key = (item.inner.from_, "out", body.transfer_id)
        outcomes.append(
            await close_transfer(parts, key, "declined", f"{item.inner.from_} declined it.")
        )
    return outcomes


async def close_transfer(
    parts: Parts,
    key: tuple[str, str, str],
    state: str,
    reason: str | None,
    *,
    only_from: tuple[str, ...] = OPEN_STATES,
) -> bool:
    """Close an open transfer: stop what runs for it, delete its bytes, tell the UI."""
    if not await file_store.close(
        parts.db, key, state, reason, parts.clock.now(), only_from=only_from
    ):
        return False
    parts.files.stop(key)
    transfer = await file_store.get(parts.db, *key)
    if transfer is not None:
        remove_files(parts, transfer)
        publish_state(parts, transfer)
    return True


# --- the streaming endpoint ---------------------------------------------------------------------


async def transfer_for(parts: Parts, caller: str, transfer_id: str, token: str) -> Transfer:
    """The incoming transfer `caller` offered, if `token` is its upload token."""
    transfer = await file_store.get(parts.db, caller, "in", transfer_id)
    if transfer is None:
        raise TransferRefused(
            "There is no transfer with this id from you.", status=404, code="unknown_transfer"
        )
    if not hmac.compare_digest(token.encode(), _token_text(transfer)):
        raise TransferRefused("The upload token is wrong.", status=403, code="bad_token")
    return transfer


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
    """Check a request for chunks start.. of `length` body bytes; return the end index."""
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
    if length > remaining:
        raise TransferRefused(
            f"The body runs past the file's declared size ({remaining} bytes remain).",
            status=400,
            code="past_end",
        )
    if length == remaining:
        return layout.count
    whole, rest = divmod(length, layout.chunk_bytes + TAG_BYTES)
    if rest or whole == 0:
        raise TransferRefused(
            "The body must hold whole sealed chunks.", status=400, code="bad_request"
        )
    return start + whole


async def take_chunks(
    parts: Parts, transfer: Transfer, start: int, length: int, content: StreamReader
) -> dict[str, Any]:
    """Read the `length` bytes of sealed chunks from `start`, verify each, write it, and finish
    the file after the last.

    One request per transfer at a time. The verified prefix is made durable (fsync, then the
    database) every CHECKPOINT_S and when the request ends for any reason but cancellation, which
    behaves as a crash would: the next request resumes from the last checkpoint.
    """
    runtime = parts.files
    key = transfer.key
    if key in runtime.receiving:
        raise TransferRefused(
            "Chunks for this transfer are already arriving.", status=409, code="busy"
        )
    runtime.receiving.add(key)
    try:
        # Checked again now that this request holds the transfer: one that just ended may have
        # moved it on since the caller looked.
        current = await _reload(parts, transfer)
        check_open(current)
        end = chunk_range(current, start, length)
        return await _take_chunks(parts, current, start, end, content)
    finally:
        runtime.receiving.discard(key)


async def _take_chunks(
    parts: Parts, transfer: Transfer, start: int, end: int, content: StreamReader
) -> dict[str, Any]:
    key, layout = transfer.key, transfer.layout
    path = stored_path(parts, transfer, partial=True)
    fd = await run_blocking(os.open, path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        held = transfer.held_bytes
        await run_blocking(os.ftruncate, fd, held)  # drop anything written after the checkpoint
        intake = parts.files.intakes.get(key)
        if intake is None or intake.hashed_bytes != held:
            intake = Intake(await run_blocking(hash_prefix, fd, held), held)
            parts.files.intakes[key] = intake
        cipher = ChunkCipher(transfer.file_key, _id_bytes(transfer))
        progress = Progress(parts, transfer, "receive", held)
        idle_s = parts.settings.files.idle_timeout_s
        loop = asyncio.get_running_loop()
        checkpoint_at = loop.time() + CHECKPOINT_S
        index = start

        def absorb(index: int, sealed: bytes) -> None:
            """In a thread: verify, write, hash; the prefix counts the chunk once written."""
            chunk = cipher.open(index, sealed)
            os.pwrite(fd, chunk, layout.offset(index))
            intake.hasher.update(chunk)
            intake.hashed_bytes += len(chunk)

        # Two things overlap with reading the socket: the thread that verifies, hashes and
        # writes the previous chunk, and a checkpoint (fsync, then the database) in flight.
        pending: asyncio.Future[None] | None = None
        flushing: asyncio.Future[bool] | None = None
        try:
            try:
                while index < end:
                    async with asyncio.timeout(idle_s):
                        sealed = await content.readexactly(layout.sealed_len(index))
                    if pending is not None:
                        await pending  # DecryptionFailed: the chunk before this one was bad
                        progress.update(intake.hashed_bytes)
                    pending = asyncio.ensure_future(run_blocking(absorb, index, sealed))
                    index += 1
                    if flushing is not None and flushing.done():
                        if not flushing.result():  # declined or cancelled meanwhile
                            check_open(await _reload(parts, transfer))
                        flushing = None
                    if flushing is None and loop.time() >= checkpoint_at:
                        checkpoint_at = loop.time() + CHECKPOINT_S
                        flushing = asyncio.ensure_future(
                            _checkpoint(parts, transfer, fd, intake.hashed_bytes)
                        )
                if pending is not None:
                    await pending
            finally:
                await _settle(pending, flushing)
        except DecryptionFailed as exc:
            await _checkpoint(parts, transfer, fd, intake.hashed_bytes)
            raise TransferRefused(
                exc.message, status=400, code="bad_chunk", **_held(transfer, intake)
            ) from exc
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            await _checkpoint(parts, transfer, fd, intake.hashed_bytes)
            raise TransferRefused(
                "The body ended early.", status=400, code="bad_request", **_held(transfer, intake)
            ) from exc
        if index < layout.count:
            await _checkpoint(parts, transfer, fd, intake.hashed_bytes)
            return {**status_of(transfer), "received_bytes": intake.hashed_bytes}
        progress.update(intake.hashed_bytes, final=True)
        return await _finish(parts, transfer, fd, intake)
    finally:
        os.close(fd)


async def _settle(*futures: asyncio.Future[Any] | None) -> None:
    """Let threads and checkpoints that use the file descriptor end before it is closed; their
    errors were (or need not be) seen by the caller."""
    for future in futures:
        if future is not None and not future.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(future)
        elif future is not None and not future.cancelled():
            future.exception()  # retrieved: no "exception never retrieved" warning


def _id_bytes(transfer: Transfer) -> bytes:
    return b64d(transfer.transfer_id, length=TRANSFER_ID_BYTES, what="transfer_id")


def _held(transfer: Transfer, intake: Intake) -> dict[str, Any]:
    return {**status_of(transfer), "received_bytes": intake.hashed_bytes}


async def _reload(parts: Parts, transfer: Transfer) -> Transfer:
    return await file_store.get(parts.db, *transfer.key) or transfer


async def _checkpoint(parts: Parts, transfer: Transfer, fd: int, held_bytes: int) -> bool:
    """fsync, then record: the database never claims bytes the disk may not have. False when the
    transfer is no longer receiving (declined or cancelled meanwhile)."""
    await run_blocking(os.fsync, fd)
    await file_store.checkpoint(parts.db, transfer.key, held_bytes)
    current = await _reload(parts, transfer)
    return current.state == "receiving"


async def _finish(parts: Parts, transfer: Transfer, fd: int, intake: Intake) -> dict[str, Any]:
    """Every chunk verified: the whole file's SHA-256 decides. Only then is it complete."""
    key = transfer.key
    parts.files.intakes.pop(key, None)
    digest = intake.hasher.digest()
    assert transfer.sha256 is not None
    if not hmac.compare_digest(digest, transfer.sha256):
        # Every chunk verified, so these are the bytes the sender sealed: its copy is not what it
        # hashed, and sending it again cannot help.
        await close_transfer(parts, key, "failed", "The file's SHA-256 does not match the offer.")
        raise TransferRefused(
            "The file's SHA-256 does not match the offer; it was discarded.",
            status=422,
            code="hash_mismatch",
        )
    await run_blocking(os.fsync, fd)
    head = await run_blocking(os.pread, fd, SNIFF_BYTES, 0)
    media_type = sniff_media(head)
    partial, final = stored_path(parts, transfer, partial=True), stored_path(parts, transfer)
    try:
        await run_blocking(os.replace, partial, final)
    except FileNotFoundError:  # deleted by a cancel or decline that won the race
        check_open(await _reload(parts, transfer))
        raise
    now = parts.clock.now()
    if not await file_store.complete_incoming(parts.db, key, transfer.stored_name, media_type, now):
        with contextlib.suppress(FileNotFoundError):
            final.unlink()
        check_open(await _reload(parts, transfer))
    done = await _reload(parts, transfer)
    log.info("received %s from %s (%d bytes, verified)", done.name, done.peer, done.size)
    publish_state(parts, done)
    return status_of(done)

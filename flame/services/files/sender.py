"""The sender's side of a transfer (PROTOCOL.md §11): once the peer has stored the offer, push the
file's chunks from the first one the peer does not hold, retry with persisted backoff, and stop
when the peer declines or the user cancels.

Offers travel through the ordinary outbox, so a file for an offline recipient waits there and
goes when the recipient appears: the offer's delivery (a `message_state` event) wakes this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flame.core.encoding import b64e
from flame.core.files import TRAILER_BYTES
from flame.core.models import TransferStatus
from flame.core.outbox import next_attempt
from flame.errors import PeerRefused, PeerUnreachable
from flame.net.peer_client import PeerClient
from flame.net.replies import json_of
from flame.services.context import Context
from flame.services.events import (
    Event,
    Feed,
    MessageStateChanged,
    MyStatusChanged,
    PresenceChanged,
)
from flame.services.files.chunkstream import ChunkStream
from flame.services.files.disk import remove_files, remove_strays
from flame.services.files.runtime import FileRuntime, Key
from flame.services.status import StatusTracker
from flame.store import contacts as contact_store
from flame.store import files as file_store
from flame.store.files import Transfer

log = logging.getLogger("flame.transfers")

# Refusals that sending again cannot cure: the transfer fails with the peer's reason.
PERMANENT_CODES = {"bad_token", "forbidden", "hash_mismatch", "past_end", "missing_trailer"}
CLOSED_BY_PEER = {"declined", "cancelled", "failed"}


@dataclass(eq=False)
class Sender:
    """The `send_files` loop and one push per transfer whose offer the peer holds."""

    ctx: Context
    runtime: FileRuntime
    client: PeerClient
    status: StatusTracker  # appearing offline, only files to peers the user wrote to go (§12.2)
    # Queues a control message (peer, kind, transfer id): Uploads.send_control.
    tell: Callable[[str, str, str], Awaitable[None]]

    async def send_files(self) -> None:
        """The loop: one push at a time per transfer, at most files.parallel_transfers at once.

        Wakes when an offer leaves the outbox (message_state), when a peer comes online (presence),
        when a push ends or a new upload is ready (self.runtime.wake), or when a retry is due.
        """
        runtime = self.runtime
        await self._drop_abandoned_uploads()
        if removed := await remove_strays(
            self.ctx.settings, await file_store.stored_names(self.ctx.db)
        ):
            log.info("removed %d stored files that no transfer names", removed)
        queue = self.ctx.events.subscribe()
        try:
            while True:
                runtime.wake.clear()
                offer_ids = await self._settle_offers()
                wait_s = await self._start_due()
                await self._wait(queue, offer_ids, wait_s)
        finally:
            self.ctx.events.unsubscribe(queue)
            tasks = list(runtime.pushes.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_due(self) -> float | None:
        """Start pushes that are due and fit; return how long until the next one is due."""
        runtime = self.runtime
        slots = self.ctx.settings.files.parallel_transfers - len(runtime.pushes)
        now = self.ctx.clock.now()
        next_due: float | None = None
        for transfer in await file_store.sendable(self.ctx.db):
            if transfer.key in runtime.pushes or not self.status.may_reach(transfer.peer):
                continue  # held back while hidden: a status change wakes this loop
            if transfer.sha256 is None and transfer.key not in runtime.growing:
                continue  # a streamed upload that ended, and is closed as it does
            if transfer.next_attempt_at > now:
                wait = transfer.next_attempt_at - now
                next_due = wait if next_due is None else min(next_due, wait)
            elif slots > 0:
                slots -= 1
                task = asyncio.create_task(self.push(transfer), name=f"push:{transfer.transfer_id}")
                runtime.pushes[transfer.key] = task
                task.add_done_callback(functools.partial(self._pushed, transfer.key))
        return next_due

    def _pushed(self, key: Key, task: asyncio.Task[None]) -> None:
        if self.runtime.pushes.get(key) is task:
            del self.runtime.pushes[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("sending %s crashed", key[2], exc_info=task.exception())
        self.runtime.wake.set()

    async def _wait(self, queue: Feed, offer_ids: set[str], wait_s: float | None) -> None:
        """Until something relevant happens; a flood of unrelated events costs no database work."""
        woken = asyncio.ensure_future(self.runtime.wake.wait())
        getter: asyncio.Future[Event | None] | None = None
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    while not queue.empty():
                        event = queue.get_nowait()
                        if event is None or await self._is_relevant(event, offer_ids):
                            return  # None: the hub dropped us; look again from the database
                    if woken.done():
                        return
                    getter = asyncio.ensure_future(queue.get())
                    await asyncio.wait({getter, woken}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        return
                    event, getter = getter.result(), None
                    if event is None or await self._is_relevant(event, offer_ids):
                        return
        except TimeoutError:
            return
        finally:
            woken.cancel()
            if getter is not None:
                getter.cancel()

    async def _is_relevant(self, event: Event, offer_ids: set[str]) -> bool:
        if isinstance(event, MessageStateChanged):
            return event.message_id in offer_ids
        if isinstance(event, PresenceChanged) and event.status != "offline":
            await file_store.retry_now(self.ctx.db, event.username)
            return True
        return isinstance(event, MyStatusChanged)  # shown again: what was held back goes

    async def _settle_offers(self) -> set[str]:
        """Fail transfers whose offer the peer refused, complete inline ones whose offer the peer
        stored; return the ids of offers still on their way."""
        now = self.ctx.clock.now()
        for transfer, reason in await file_store.refused_offers(self.ctx.db):
            if await file_store.close(self.ctx.db, transfer.key, "failed", reason, now):
                remove_files(self.ctx.settings, transfer)
                await self._publish(transfer)
        # The offers still on their way are read BEFORE inline ones are completed: an offer stored in
        # between is then either completed here or still listed, so its message_state wakes us.
        on_the_way = await file_store.offers_on_the_way(self.ctx.db)
        for transfer in await file_store.complete_inline(self.ctx.db, now):
            log.info("sent %s to %s inline (%d bytes)", transfer.name, transfer.peer, transfer.size)
            self.runtime.publish(transfer)
        return on_the_way

    async def _drop_abandoned_uploads(self) -> None:
        """A browser upload cut short by a restart cannot resume: the user sends the file again."""
        for transfer in await file_store.abandoned_uploads(self.ctx.db):
            if (
                transfer.key in self.runtime.uploads
            ):  # alive: this loop was restarted, not the daemon
                continue
            reason = "The upload was interrupted; send the file again."
            if await file_store.close(
                self.ctx.db, transfer.key, "failed", reason, self.ctx.clock.now()
            ):
                remove_files(self.ctx.settings, transfer)
                if transfer.message_id is not None:  # offered while it arrived: take it back
                    await self.tell(transfer.peer, "file_cancel", transfer.transfer_id)

    async def push(self, transfer: Transfer) -> None:
        """One attempt: ask what the peer holds, then stream the rest. Every outcome is recorded."""
        contact = await contact_store.get_contact(self.ctx.db, transfer.peer)
        peer = None if contact is None else contact.endpoint
        if peer is None:
            await self._retry(transfer, "waiting for the recipient to come online", 0, None)
            return
        token = b64e(transfer.upload_token)
        chunks: ChunkStream | None = None
        try:
            status = await self.client.transfer_status(peer, transfer.transfer_id, token)
            if await self._mirror(transfer, status, 0):
                return
            start = transfer.layout.held_chunks(status.received_bytes)
            if not await file_store.record_attempt(
                self.ctx.db,
                transfer.key,
                state="sending",
                held_bytes=status.received_bytes,
                sent_bytes=0,
                attempts=transfer.attempts,
                next_attempt_at=transfer.next_attempt_at,
                error=None,
                now=self.ctx.clock.now(),
            ):
                return
            await self._publish(transfer)
            if start > 0:
                log.info("resuming %s at chunk %d", transfer.transfer_id, start)
            chunks = ChunkStream(self.ctx, self.runtime, transfer, start)
            body = chunks.body()
            try:
                result = await self.client.send_chunks(
                    peer,
                    transfer.transfer_id,
                    token,
                    start,
                    transfer.layout.sealed_bytes(start) + TRAILER_BYTES * transfer.hash_last,
                    body,
                )
            finally:
                with contextlib.suppress(RuntimeError):  # still running: its task's end closes it
                    await body.aclose()
            if not await self._mirror(transfer, result, chunks.sent_bytes):
                await self._retry(transfer, "the peer stopped early", chunks.sent_bytes, None)
        except PeerRefused as exc:
            sent = 0 if chunks is None else chunks.sent_bytes
            await self._refused(transfer, exc, sent)
        except PeerUnreachable as exc:
            sent = 0 if chunks is None else chunks.sent_bytes
            await self._retry(transfer, exc.message, sent, None)

    async def _mirror(self, transfer: Transfer, status: TransferStatus, sent: int) -> bool:
        """Follow the peer's view: complete, or closed by the peer. True when the transfer ended."""
        if status.state == "complete":
            state, error = "complete", None
        elif status.state in CLOSED_BY_PEER:
            state = "declined" if status.state == "declined" else "failed"
            error = f"{transfer.peer} {status.state} it."
        else:
            return False
        if await file_store.record_attempt(
            self.ctx.db,
            transfer.key,
            state=state,
            held_bytes=status.received_bytes,
            sent_bytes=sent,
            attempts=transfer.attempts,
            next_attempt_at=0.0,
            error=error,
            now=self.ctx.clock.now(),
        ):
            if state != "complete":
                remove_files(self.ctx.settings, transfer)
            else:
                log.info("sent %s to %s (%d bytes)", transfer.name, transfer.peer, transfer.size)
            await self._publish(transfer)
        return True

    async def _refused(self, transfer: Transfer, exc: PeerRefused, sent: int) -> None:
        if exc.code == "transfer_closed":
            # The refusal's body is {"error", "message", **the receiver's status} (§11.4).
            answer = json_of(exc.payload) or {}
            fields = {name: answer.get(name) for name in TransferStatus.model_fields}
            try:
                status = TransferStatus.model_validate(fields, strict=False)
            except ValueError:
                status = TransferStatus(
                    transfer_id=transfer.transfer_id, state="failed", received_bytes=0, size=0
                )
            await self._mirror(transfer, status, sent)
            return
        if exc.code in PERMANENT_CODES:
            reason = f"{transfer.peer}'s daemon refused it: {exc.message}"
            if await file_store.record_attempt(
                self.ctx.db,
                transfer.key,
                state="failed",
                held_bytes=transfer.held_bytes,
                sent_bytes=sent,
                attempts=transfer.attempts + 1,
                next_attempt_at=0.0,
                error=reason,
                now=self.ctx.clock.now(),
            ):
                remove_files(self.ctx.settings, transfer)
                await self._publish(transfer)
            return
        # bad_chunk (damaged on the way: sent again), wrong_offset, busy, unknown_transfer, 503, 429..
        await self._retry(transfer, exc.message, sent, exc.retry_after_s, _held_in(exc.payload))

    async def _retry(
        self,
        transfer: Transfer,
        error: str,
        sent: int,
        retry_after_s: float | None,
        held_bytes: int | None = None,
    ) -> None:
        settings = self.ctx.settings.daemon
        now = self.ctx.clock.now()
        attempts = 0 if sent > 0 else transfer.attempts  # progress was made: back off from scratch
        due = next_attempt(
            attempts,
            now,
            base_s=settings.retry_base_s,
            max_s=settings.retry_max_s,
            jitter=random.random(),
            retry_after_s=retry_after_s,
        )
        current = await file_store.get(self.ctx.db, *transfer.key)
        held = transfer.held_bytes if current is None else current.held_bytes
        held = min(transfer.size, held if held_bytes is None else held_bytes)
        if await file_store.record_attempt(
            self.ctx.db,
            transfer.key,
            state="waiting",
            held_bytes=held,
            sent_bytes=sent,
            attempts=attempts + 1,
            next_attempt_at=due,
            error=error,
            now=now,
        ):
            log.info("sending %s deferred: %s", transfer.transfer_id, error)
            await self._publish(transfer)

    async def _publish(self, transfer: Transfer) -> None:
        await self.runtime.publish_current(transfer.key)


def _held_in(payload: bytes) -> int | None:
    """`received_bytes` of a refusal that tells how much the receiver kept (§11.4)."""
    held = (json_of(payload) or {}).get("received_bytes")
    return held if isinstance(held, int) and not isinstance(held, bool) and held >= 0 else None

"""Offers, cancels and declines of files (PROTOCOL.md §11.2, §11.5, §11.6): inner kinds that
arrive as envelopes (the receivers services/inbox.py dispatches to)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass

from flame.core.files import SNIFF_BYTES, Offer, check_offer, sniff_media
from flame.core.models import FileCancelBody, FileDeclineBody, FileOfferBody
from flame.core.states import OPEN_STATES
from flame.errors import BadEnvelope, Forbidden, RequestError, Unavailable
from flame.services.blocks import Blocks
from flame.services.context import Context
from flame.services.events import MessageAdded
from flame.services.files.atrest import cipher_of, write_whole
from flame.services.files.disk import new_stored_name, run_blocking, stored_path
from flame.services.files.runtime import FileRuntime
from flame.services.receipts import Receipts
from flame.store import files as file_store
from flame.store import messages as message_store
from flame.store.files import Transfer
from flame.store.messages import Incoming

log = logging.getLogger("flame.transfers")


@dataclass(eq=False)
class Offers:
    """The receivers of `file_offer`, `file_cancel` and `file_decline` (services/inbox.py): each
    commits before it returns, so the peer's 2xx means the file's record is durable."""

    ctx: Context
    runtime: FileRuntime
    blocks: Blocks
    receipts: Receipts

    async def receive_offers(self, items: list[Incoming]) -> list[bool | RequestError]:
        """Check every offer, then record the transfers and store the messages. The transfers go
        first: a crash in between leaves a row that the sender's retry of the same envelope finds
        again, never a message without its transfer. An inline file (§11.6) is on disk, fsynced,
        before its transfer is recorded as complete."""
        outcomes: list[bool | RequestError] = [False] * len(items)
        fresh: list[tuple[int, Incoming, Transfer]] = []
        seen: set[tuple[str, str]] = set()
        now = self.ctx.clock.now()
        deleted = await message_store.deleted_keys(self.ctx.db, [item.key for item in items])
        await message_store.erase_copies(self.ctx.db, sorted(deleted))  # (PROTOCOL.md §17.3)
        for index, item in enumerate(items):
            if item.key in deleted:  # deleted by its author before it came: nothing to keep
                continue
            try:
                transfer, data = await self._check_offer(item, now, seen)
            except RequestError as exc:
                outcomes[index] = exc
                continue
            if data is not None:
                try:
                    transfer = await self.write_inline(transfer, data)
                except Unavailable as exc:
                    outcomes[index] = exc
                    continue
            fresh.append((index, item, transfer))
        await file_store.insert_incoming(self.ctx.db, [transfer for _, _, transfer in fresh])
        accepted = [item for _, item, _ in fresh]
        receipts = self.receipts.delivered(accepted)  # duplicates too (PROTOCOL.md §13.2)
        stored = await message_store.store_incoming(self.ctx.db, accepted, receipts)
        for (index, _, transfer), message in zip(fresh, stored, strict=True):
            outcomes[index] = message is not None
            if message is not None:
                log.info(
                    "%s offers %s (%d bytes)", transfer.peer, transfer.transfer_id, transfer.size
                )
                self.ctx.events.publish(MessageAdded(message, transfer))
                if transfer.state == "complete":  # inline: arrived whole, as a streamed file ends
                    log.info(
                        "received %s from %s inline (%d bytes)",
                        transfer.name,
                        transfer.peer,
                        transfer.size,
                    )
                    self.runtime.publish(transfer)
        if receipts:
            self.receipts.owing()
        return outcomes

    async def _check_offer(
        self, item: Incoming, now: float, seen: set[tuple[str, str]]
    ) -> tuple[Transfer, bytes | None]:
        """The transfer an offer makes, and the inline content still to be written (None when it is
        streamed, or when this is a second delivery of an offer already recorded)."""
        author = item.inner.from_
        body = item.inner.body
        assert isinstance(body, FileOfferBody)
        if await self.blocks.is_blocked(author):
            raise Forbidden("The recipient does not accept files from you.")
        offer = check_offer(body, self.ctx.settings.files.max_file_bytes)
        existing = await file_store.with_peer(self.ctx.db, author, offer.transfer_id)
        if (author, offer.transfer_id) in seen or any(t.message_id != item.key for t in existing):
            raise BadEnvelope("This transfer id is already in use.", code="duplicate_transfer")
        seen.add((author, offer.transfer_id))
        if existing:  # the same envelope again (a retry, or a relay's copy): nothing new to write
            return existing[0], None
        transfer = incoming_transfer(author, offer, body.caption or "", item.key, now)
        return transfer, offer.data

    async def write_inline(self, transfer: Transfer, data: bytes) -> Transfer:
        """Write an inline file under its generated name and fsync it; the transfer it returns is
        complete. A crash before the database commit leaves an unreferenced file, which the next
        start removes (disk.remove_strays); the sender's retry writes it again."""
        path = stored_path(self.ctx.settings, transfer)

        def write() -> None:  # sealed, as every stored file (services/files/atrest.py)
            write_whole(path, cipher_of(transfer), transfer.layout, data)

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

    async def receive_cancels(self, items: list[Incoming]) -> list[bool | RequestError]:
        """The sender stopped: drop what we hold. True when it changed something.

        An inline file (§11.6) is complete from the moment its offer is stored, yet its sender cancels
        only while it does not know that (for instance the recipient was offline): the cancel, queued
        behind the offer, takes the file back."""
        outcomes: list[bool | RequestError] = []
        for item in items:
            body = item.inner.body
            assert isinstance(body, FileCancelBody)
            key = (item.inner.from_, "in", body.transfer_id)
            transfer = await file_store.get(self.ctx.db, *key)
            closable = (*OPEN_STATES, "complete") if transfer and transfer.inline else OPEN_STATES
            outcomes.append(
                await self.runtime.close(
                    key, "cancelled", "The sender cancelled it.", only_from=closable
                )
            )
        return outcomes

    async def receive_declines(self, items: list[Incoming]) -> list[bool | RequestError]:
        """The recipient refused one of our files: stop sending it."""
        outcomes: list[bool | RequestError] = []
        for item in items:
            body = item.inner.body
            assert isinstance(body, FileDeclineBody)
            key = (item.inner.from_, "out", body.transfer_id)
            outcomes.append(
                await self.runtime.close(key, "declined", f"{item.inner.from_} declined it.")
            )
        return outcomes


def incoming_transfer(
    author: str, offer: Offer, caption: str, message_id: str, now: float
) -> Transfer:
    """The transfer an offer that passed core.files.check_offer makes (PROTOCOL.md §11.2)."""
    return Transfer(
        peer=author,
        direction="in",
        transfer_id=offer.transfer_id,
        message_id=message_id,
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
        created_at=now,
        inline=offer.data is not None,
        caption=caption,
        hash_last=offer.sha256 is None,
    )

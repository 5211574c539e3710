"""Receipts (PROTOCOL.md §13.2): the recipient's daemon says `delivered` when it has stored a
message, and `read` when its user has seen it (unless read receipts are off). Receipts are
envelopes like any other, queued in the outbox, retried and relayed; they are never answered."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from flame.core.models import ReceiptBody
from flame.services.context import Context
from flame.services.events import MessageStateChanged
from flame.services.sealing import seal_control
from flame.services.sessions import Sessions
from flame.store import contacts as contact_store
from flame.store import messages as message_store
from flame.store import outbox as outbox_store
from flame.store.keystore import get_meta, set_meta
from flame.store.messages import Incoming

READ_RECEIPTS_KEY = "read_receipts"
IDS_PER_RECEIPT = 1000


def receipt_key(envelope_id: str) -> str:
    return f"receipt:{envelope_id}"


@dataclass(eq=False)
class Receipts:
    ctx: Context
    sessions: Sessions

    async def build(
        self, state: str, ids_by_author: dict[str, list[str]]
    ) -> list[outbox_store.Queued]:
        """Sealed receipts, one per author (at most IDS_PER_RECEIPT ids each), ready to queue."""
        queued = []
        for author, ids in ids_by_author.items():
            contact = await contact_store.get_contact(self.ctx.db, author)
            if contact is None or contact.key_changed:
                continue
            for start in range(0, len(ids), IDS_PER_RECEIPT):
                chunk = ids[start : start + IDS_PER_RECEIPT]
                body = ReceiptBody(state=state, ids=chunk)  # type: ignore[arg-type]
                sealed = await seal_control(self.ctx, self.sessions, contact, "receipt", body)
                if sealed is None:
                    continue
                envelope = sealed.envelope
                queued.append(
                    outbox_store.Queued(
                        receipt_key(envelope.id), "receipt", author, envelope, sealed.ratchet
                    )
                )
        return queued

    async def delivered(self, items: list[Incoming]) -> list[outbox_store.Queued]:
        """Receipts for every message of a batch, duplicates included: a sender that retries
        never got our 2xx, so it must hear again that we have the message."""
        by_author: dict[str, list[str]] = defaultdict(list)
        for item in items:
            by_author[item.inner.from_].append(item.inner.id)
        return await self.build("delivered", dict(by_author))

    async def read_enabled(self) -> bool:
        override = await get_meta(self.ctx.db, READ_RECEIPTS_KEY)
        return self.ctx.settings.daemon.read_receipts if override is None else override == "on"

    async def set_read_enabled(self, enabled: bool) -> None:
        await set_meta(self.ctx.db, READ_RECEIPTS_KEY, "on" if enabled else "off")

    async def mark_read(self, peer: str, up_to_rowid: int) -> None:
        """The user saw the conversation up to `up_to_rowid`: tell the authors, if allowed."""
        ctx = self.ctx
        newly_read = await message_store.mark_read(ctx.db, peer, up_to_rowid)
        if not newly_read or not await self.read_enabled():
            return
        queued = await self.build("read", {peer: newly_read})
        async with ctx.db.transaction() as conn:
            await outbox_store.enqueue(
                conn, queued, ctx.clock.now(), ctx.settings.daemon.message_ttl_s
            )
        ctx.wake.outbox.set()

    async def receive(self, items: list[Incoming]) -> list[bool]:
        """Move our messages' states forward (never back) and stop retrying what arrived."""
        for item in items:
            body = item.inner.body
            assert isinstance(body, ReceiptBody)
            changed = await message_store.apply_receipt(
                self.ctx.db, self.ctx.me, item.inner.from_, body.state, body.ids
            )
            for key in changed:
                self.ctx.events.publish(
                    MessageStateChanged(key, item.inner.from_, body.state, None)
                )
        return [True] * len(items)

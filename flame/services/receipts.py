"""Receipts (PROTOCOL.md §13.2): the recipient's daemon says `delivered` when it has stored a
message, and `read` when its user has seen it (unless read receipts are off). Receipts are
envelopes like any other, queued in the outbox, retried and relayed; they are never answered.

A `delivered` receipt is owed in the transaction that stores the message (store/receipts.py) and
paid RECEIPT_DELAY_S later by the loop `send_owed`, with every other one owed by then: the
batches of a burst share one receipt per author, and the receipt of a message does not arrive
at its author together with the author's next message."""

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
from flame.store import receipts as owed_store
from flame.store.keystore import get_meta, set_meta
from flame.store.messages import Incoming
from flame.store.receipts import Owed

READ_RECEIPTS_KEY = "read_receipts"
IDS_PER_RECEIPT = 1000
RECEIPT_DELAY_S = 0.1  # a delivered receipt goes this long after it was first owed, at most
OWED_PER_PASS = 10 * IDS_PER_RECEIPT  # paid in one transaction, at most


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

    def delivered(self, items: list[Incoming]) -> list[Owed]:
        """The receipts owed for every message of a batch, duplicates included (a sender that
        retries never got our 2xx, so it must hear again that we have the message): for the
        transaction that stores them (store/receipts.owe), then `owing`."""
        return [Owed(item.inner.from_, item.inner.id) for item in items]

    def owing(self) -> None:
        """Receipts were owed just now: the loop pays them RECEIPT_DELAY_S after the first."""
        self.ctx.wake.receipts.set()

    async def send_owed(self) -> None:
        """The loop that pays the delivered receipts owed: RECEIPT_DELAY_S after the oldest was
        owed, every one owed by then, one receipt per author (§13.2). What was owed before a
        restart is paid after it."""
        ctx, wake = self.ctx, self.ctx.wake.receipts
        while True:
            wake.clear()
            since = await owed_store.oldest(ctx.db)
            if since is None:
                await wake.wait()
                continue
            if (wait := since + RECEIPT_DELAY_S - ctx.clock.now()) > 0:
                await ctx.clock.sleep(min(wait, RECEIPT_DELAY_S))
            await self.pay_owed()

    async def pay_owed(self) -> int:
        """Seal a receipt per author for what is owed (at most OWED_PER_PASS ids), queue them and
        settle what they pay in one transaction. Returns how many receipts were queued."""
        ctx = self.ctx
        rows = await owed_store.owed(ctx.db, OWED_PER_PASS)
        by_author: dict[str, dict[str, None]] = defaultdict(dict)  # ids in order, once each
        for row in rows:
            by_author[row.owed.author][row.owed.envelope_id] = None
        queued = await self.build("delivered", {a: list(ids) for a, ids in by_author.items()})
        async with ctx.db.transaction() as conn:
            await outbox_store.enqueue(
                conn, queued, ctx.clock.now(), ctx.settings.daemon.message_ttl_s
            )
            await owed_store.settle(conn, [row.rowid for row in rows])
        if queued:
            ctx.wake.outbox.set()
        return len(queued)

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

"""Receipts (PROTOCOL.md §13.2): the recipient's daemon says `delivered` when it has stored a
message, and `read` when its user has seen it (unless read receipts are off). Receipts are
envelopes like any other, queued in the outbox, retried and relayed; they are never answered."""

from __future__ import annotations

from collections import defaultdict

from flame.core.models import ReceiptBody
from flame.parts import Parts
from flame.sealing import seal_control
from flame.store import contacts as contact_store
from flame.store import messages as message_store
from flame.store import outbox as outbox_store
from flame.store.keystore import get_meta
from flame.store.messages import Incoming


def receipt_key(envelope_id: str) -> str:
    return f"receipt:{envelope_id}"


async def build_receipts(
    parts: Parts, state: str, ids_by_author: dict[str, list[str]]
) -> list[outbox_store.Queued]:
    """Sealed receipts, one per author (at most 1000 ids each), ready to queue."""
    queued = []
    for author, ids in ids_by_author.items():
        contact = await contact_store.get_contact(parts.db, author)
        if contact is None or contact.key_changed:
            continue
        for start in range(0, len(ids), 1000):
            body = ReceiptBody(state=state, ids=ids[start : start + 1000])  # type: ignore[arg-type]
            envelope = seal_control(parts, contact, "receipt", body)
            queued.append(
                outbox_store.Queued(receipt_key(envelope.id), "receipt", author, envelope)
            )
    return queued


async def delivered_receipts(parts: Parts, items: list[Incoming]) -> list[outbox_store.Queued]:
    """Receipts for every text message of a batch, duplicates included: a sender that retries
    never got our 2xx, so it must hear again that we have the message."""
    by_author: dict[str, list[str]] = defaultdict(list)
    for item in items:
        by_author[item.inner.from_].append(item.inner.id)
    return await build_receipts(parts, "delivered", dict(by_author))


async def read_receipts_enabled(parts: Parts) -> bool:
    override = await get_meta(parts.db, "read_receipts")
    return parts.settings.daemon.read_receipts if override is None else override == "on"


async def mark_read(parts: Parts, peer: str, up_to_rowid: int) -> None:
    """The user saw the conversation up to `up_to_rowid`: tell the authors, if allowed."""
    newly_read = await message_store.mark_read(parts.db, peer, up_to_rowid)
    if not newly_read or not await read_receipts_enabled(parts):
        return
    queued = await build_receipts(parts, "read", {peer: newly_read})
    async with parts.db.transaction() as conn:
        await outbox_store.enqueue(
            conn, queued, parts.clock.now(), parts.settings.daemon.message_ttl_s
        )
    parts.wake_outbox.set()


async def receive_receipts(parts: Parts, items: list[Incoming]) -> list[bool]:
    """Move our messages' states forward (never back) and stop retrying what arrived."""
    for item in items:
        body = item.inner.body
        assert isinstance(body, ReceiptBody)
        changed = await message_store.apply_receipt(
            parts.db, parts.me, item.inner.from_, body.state, body.ids
        )
        for key in changed:
            parts.hub.publish(
                {
                    "type": "message_state",
                    "id": key,
                    "peer": item.inner.from_,
                    "state": body.state,
                    "error": None,
                }
            )
    return [True] * len(items)

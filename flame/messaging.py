"""Sending and receiving messages: the daemon's side of core/envelope.py's protocol.

Send: message + sealed envelope + outbox entry in one transaction, then wake the delivery task.
Receive: every envelope of a batch is opened and checked before anything is stored; the batch's
good envelopes are stored in one transaction, and only then does the peer get its 2xx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flame.blocks import is_blocked
from flame.core import envelope as envelope_rules
from flame.core.models import (
    SEQUENCED_KINDS,
    BatchResult,
    Envelope,
    EnvelopeBatch,
    EnvelopeResult,
    Inner,
    TextBody,
    Wire,
)
from flame.errors import (
    BadEnvelope,
    BadRequest,
    Conflict,
    DecryptionFailed,
    NotFound,
    RequestError,
    TooLarge,
)
from flame.parts import Parts
from flame.profiles import receive_profile_updates
from flame.receipts import delivered_receipts, receive_receipts
from flame.roster import fetch_contact
from flame.store import contacts as contact_store
from flame.store import messages as message_store
from flame.store.contacts import Contact
from flame.store.messages import Incoming, Message
from flame.transfers import incoming as transfers_in

log = logging.getLogger("flame.messaging")


async def send_text(parts: Parts, peer: str, text: str) -> Message:
    parts.require_identity()
    if not text.strip():
        raise BadRequest("The message is empty.", code="empty_message")
    limit = parts.settings.daemon.max_message_chars
    if len(text) > limit:
        raise TooLarge(f"The message is longer than {limit} characters.", code="message_too_long")
    return await send_inner(parts, peer, "text", TextBody(text=text))


async def recipient_contact(parts: Parts, peer: str) -> Contact:
    """The contact to send to: looked up in the directory on first use; refused while their key
    change is pending."""
    contact = await contact_store.get_contact(parts.db, peer)
    if contact is None and peer != parts.me:
        contact = await fetch_contact(parts, peer)
    if contact is None:
        raise NotFound(
            f"There is no user named {peer!r} in the directory.", code="unknown_recipient"
        )
    if contact.key_changed:
        raise Conflict(
            f"{peer}'s identity key has changed. Compare the safety number with them, "
            "then accept the new key to send again.",
            code="key_changed",
        )
    if await is_blocked(parts, peer):
        raise Conflict(f"You blocked {peer}. Unblock them to write to them.", code="blocked")
    return contact


async def send_inner(parts: Parts, peer: str, kind: str, body: Wire) -> Message:
    """Queue an inner message of any kind for the group-commit writer; returns it once stored."""
    parts.require_identity()
    contact = await recipient_contact(parts, peer)
    pending = PendingSend(
        peer, contact.x25519_key, body, asyncio.get_running_loop().create_future(), kind
    )
    parts.outgoing.put_nowait(pending)
    return await pending.done


@dataclass(frozen=True, slots=True)
class PendingSend:
    peer: str
    peer_key: bytes
    body: Wire
    done: asyncio.Future[Message]
    kind: str = "text"


async def send_hidden(parts: Parts, peers: list[Contact], kind: str, body: Wire) -> list[Message]:
    """Queue one message of a hidden kind (store.messages.HIDDEN_KINDS: delivered through the
    outbox, never shown in a conversation) to each of `peers`; returns once all are stored."""
    parts.require_identity()
    loop = asyncio.get_running_loop()
    pending = [
        PendingSend(c.username, c.x25519_key, body, loop.create_future(), kind) for c in peers
    ]
    for item in pending:
        parts.outgoing.put_nowait(item)
    return list(await asyncio.gather(*(item.done for item in pending)))


async def write_outgoing(parts: Parts) -> None:
    """Group commit (DESIGN §10): every send waiting at this moment is sealed and stored in one
    transaction, so a burst costs one fsync per group instead of one per message. Each sender's
    request is answered only after its message is durable."""
    while True:
        group = [await parts.outgoing.get()]
        while len(group) < parts.settings.daemon.batch_max and not parts.outgoing.empty():
            group.append(parts.outgoing.get_nowait())
        try:
            messages = await _store_group(parts, group)
        except asyncio.CancelledError:
            for item in group:
                item.done.cancel()
            raise
        except Exception as exc:
            log.exception("could not store %d outgoing messages", len(group))
            for item in group:
                if not item.done.done():
                    item.done.set_exception(exc)
            continue
        for item, message in zip(group, messages, strict=True):
            if message.is_shown:
                parts.hub.publish({"type": "message", "message": message.to_ui()})
            if not item.done.done():
                item.done.set_result(message)
        parts.wake_outbox.set()


async def _store_group(parts: Parts, group: list[PendingSend]) -> list[Message]:
    identity = parts.require_identity()
    now = parts.clock.now()
    seqs = await message_store.next_sequences(parts.db, sorted({item.peer for item in group}))
    sealed = []
    for item in group:
        seq = 0  # control kinds (profile updates) stay outside the conversation's order
        if item.kind in SEQUENCED_KINDS:
            seq = seqs[item.peer]
            seqs[item.peer] = seq + 1
        inner = Inner(
            from_=parts.me,
            to=item.peer,
            id=envelope_rules.new_message_id(),
            seq=seq,
            ts=int(now * 1000),
            kind=item.kind,
            body=item.body,
        )
        envelope = envelope_rules.seal(identity.exchange, item.peer, item.peer_key, inner)
        sealed.append(message_store.Outgoing(inner, envelope))
    return await message_store.store_outgoing(
        parts.db, parts.me, sealed, now, parts.settings.daemon.message_ttl_s
    )


async def receive_batch(parts: Parts, batch: EnvelopeBatch) -> tuple[int, BatchResult]:
    """Open, check and store a batch. Returns the HTTP status and per-envelope results.

    200 when every envelope was stored or was a duplicate; otherwise the status of the first
    refusal, with the good envelopes of the batch stored all the same.
    """
    identity = parts.require_identity()
    now = parts.clock.now()
    results: list[EnvelopeResult | None] = []
    statuses: dict[int, int] = {}  # index of a refused envelope -> its HTTP status
    accepted: list[tuple[int, Incoming]] = []
    authors: dict[str, Contact | None] = {}  # one contact lookup per author per batch
    for envelope in batch.envelopes:
        try:
            incoming = await _open_checked(parts, identity.exchange, envelope, now, authors)
        except RequestError as exc:
            statuses[len(results)] = exc.status
            results.append(_refused(envelope.id, exc))
            continue
        accepted.append((len(results), incoming))
        results.append(None)
    by_kind: dict[str, list[tuple[int, Incoming]]] = {}
    for index, item in accepted:
        by_kind.setdefault(item.inner.kind, []).append((index, item))
    for kind, group in by_kind.items():
        outcomes = await RECEIVERS[kind](parts, [item for _, item in group])
        for (index, item), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, RequestError):
                statuses[index] = outcome.status
                results[index] = _refused(item.inner.id, outcome)
            else:
                results[index] = EnvelopeResult(
                    id=item.inner.id, status="stored" if outcome else "duplicate"
                )
    final = [r for r in results if r is not None]
    status = statuses[min(statuses)] if statuses else 200
    return status, BatchResult(results=final)


def _refused(envelope_id: str, exc: RequestError) -> EnvelopeResult:
    return EnvelopeResult(id=envelope_id, status="rejected", error=exc.code, message=exc.message)


# Per item: True stored, False a duplicate, or the reason it is refused (PROTOCOL.md §7.2).
Receiver = Callable[[Parts, list[Incoming]], Awaitable[Sequence[bool | RequestError]]]


async def receive_texts(parts: Parts, items: list[Incoming]) -> list[bool]:
    """Store text messages and their delivered receipts in one transaction, then show the new
    ones. True: new; False: duplicate."""
    receipts = await delivered_receipts(parts, items)
    stored = await message_store.store_incoming(
        parts.db, items, receipts, parts.settings.daemon.message_ttl_s
    )
    for message in stored:
        if message is not None:
            parts.hub.publish({"type": "message", "message": message.to_ui()})
    if receipts:
        parts.wake_outbox.set()
    return [message is not None for message in stored]


# What the daemon does with each kind of inner message (core.models.KIND_BODIES lists them). A
# receiver commits before it returns: the peer's 2xx follows.
RECEIVERS: dict[str, Receiver] = {
    "text": receive_texts,
    "receipt": receive_receipts,
    "profile_update": receive_profile_updates,
    "file_offer": transfers_in.receive_file_offers,
    "file_cancel": transfers_in.receive_file_cancels,
    "file_decline": transfers_in.receive_file_declines,
}


async def _open_checked(
    parts: Parts,
    exchange_key: X25519PrivateKey,
    envelope: Envelope,
    now: float,
    authors: dict[str, Contact | None],
) -> Incoming:
    parts.decryptions += 1
    opened = envelope_rules.open_envelope(exchange_key, parts.me, envelope)
    author = opened.inner.from_
    if await is_blocked(parts, author):
        # Written by someone this user blocked, brought by someone else (PROTOCOL.md §12.4):
        # refused like any envelope that does not open, so nobody learns why.
        raise DecryptionFailed("The envelope was rejected.")
    if author not in authors:
        contact = await contact_store.get_contact(parts.db, author)
        authors[author] = contact or await fetch_contact(parts, author)
    contact = authors[author]
    if contact is None:
        raise BadEnvelope("The author is not a known user.", code="unknown_sender")
    if opened.sender_key != contact.x25519_key:
        # Sealed with a key that is not the pinned one: a key change (or a forgery). Refused.
        parts.hub.publish({"type": "key_change", "username": author})
        raise BadEnvelope(
            "The sender key is not the one pinned for the author.", code="sender_key_mismatch"
        )
    return Incoming(inner=opened.inner, received_at=now)

"""Store-and-forward (PROTOCOL.md §13.3), the relay's side and the recipient's side.

A relay holds sealed envelopes it cannot read, within quotas, until their recipient is seen
online; it hands them over and drops them only on the recipient's signed acknowledgement. A
daemon that starts also asks online peers for anything held for it.
"""

from __future__ import annotations

import asyncio
import logging

from flame.core.models import (
    BatchResult,
    Collected,
    DepositBatch,
    Envelope,
    EnvelopeBatch,
    EnvelopeResult,
    RelayAck,
)
from flame.core.relays import make_ack, verify_ack
from flame.delivery import envelope_bytes, fit_batch
from flame.errors import BadRequest, Forbidden, PeerRefused, PeerUnreachable
from flame.messaging import receive_batch
from flame.parts import Parts
from flame.store import contacts as contact_store
from flame.store import relay as relay_store
from flame.store.contacts import Contact

log = logging.getLogger("flame.relay")


async def accept_deposits(parts: Parts, depositor: str, batch: DepositBatch) -> BatchResult:
    """Hold envelopes for their recipients, within quotas. Over quota: `over_quota` per envelope
    (the route answers 429 when nothing was taken)."""
    settings = parts.settings.daemon
    now = parts.clock.now()
    results: list[EnvelopeResult] = []
    by_depositor = await relay_store.usage_by_depositor(parts.db, depositor)
    taken: list[tuple[int, tuple[Envelope, float]]] = []
    usage: dict[str, relay_store.Usage] = {}
    for deposit in batch.deposits:
        envelope = deposit.envelope
        if envelope.to in (parts.me, depositor):
            results.append(
                EnvelopeResult(
                    id=envelope.id,
                    status="rejected",
                    error="bad_deposit",
                    message="A relay holds envelopes for third parties.",
                )
            )
            continue
        if await contact_store.get_contact(parts.db, envelope.to) is None:
            results.append(
                EnvelopeResult(
                    id=envelope.id,
                    status="rejected",
                    error="unknown_recipient",
                    message="This relay does not know the recipient.",
                )
            )
            continue
        current = usage.get(envelope.to) or await relay_store.usage_by_recipient(
            parts.db, envelope.to
        )
        size = len(envelope.model_dump_json())
        if (
            by_depositor.count + 1 > settings.relay_max_per_depositor
            or current.count + 1 > settings.relay_max_per_recipient
            or current.size + size > settings.relay_max_bytes_per_recipient
        ):
            results.append(
                EnvelopeResult(
                    id=envelope.id,
                    status="rejected",
                    error="over_quota",
                    message="This relay holds its quota already.",
                )
            )
            continue
        by_depositor = relay_store.Usage(by_depositor.count + 1, by_depositor.size + size)
        usage[envelope.to] = relay_store.Usage(current.count + 1, current.size + size)
        expires_at = min(float(deposit.expires_at), now + settings.relay_ttl_s)
        taken.append((len(results), (envelope, expires_at)))
        results.append(EnvelopeResult(id=envelope.id, status="stored"))
    fresh = await relay_store.store_deposits(parts.db, depositor, [pair for _, pair in taken], now)
    for (index, _), is_new in zip(taken, fresh, strict=True):
        if not is_new:
            results[index] = EnvelopeResult(id=results[index].id, status="duplicate")
    if taken:
        parts.wake_relay.set()
    return BatchResult(results=results)


async def collect(parts: Parts, recipient: str, limit: int) -> Collected:
    """What this relay holds for the caller; only the recipient itself may collect."""
    held = await relay_store.held_for(parts.db, recipient, parts.clock.now(), limit + 1)
    page = fit_batch(held[:limit], envelope_bytes)  # an answer stays near BATCH_BYTES
    return Collected(envelopes=page, more=len(held) > len(page))


async def accept_ack(parts: Parts, signer: str, ack: RelayAck) -> int:
    """Drop what the recipient acknowledged, if the recipient itself signed it."""
    contact = await contact_store.get_contact(parts.db, signer)
    if ack.to != signer or contact is None:
        raise Forbidden("Only the recipient may acknowledge its envelopes.", code="bad_ack")
    if not verify_ack(ack, contact.identity_key, relay=parts.me, to=signer):
        raise Forbidden("The acknowledgement is not signed by its recipient.", code="bad_ack")
    return await relay_store.drop(parts.db, signer, ack.ids)


def ack_for(parts: Parts, relay: str, result: BatchResult) -> RelayAck:
    """Our signed word to a relay that we hold what it handed us (stored or duplicate)."""
    ids = [r.id for r in result.results if r.status != "rejected"]
    return make_ack(parts.require_identity(), relay, parts.me, ids, int(parts.clock.now()))


# --- forwarding: the relay pushes to recipients that are online --------------------------------


async def forward_once(parts: Parts) -> int:
    """Hand held envelopes to recipients that are online. Returns how many were dropped on the
    recipients' signed acknowledgements."""
    now = parts.clock.now()
    await relay_store.purge_expired(parts.db, now)
    dropped = 0
    for recipient in await relay_store.recipients(parts.db, now):
        contact = await contact_store.get_contact(parts.db, recipient)
        if contact is None or contact.status == "offline" or not contact.address:
            continue
        dropped += await _forward_to(parts, contact, now)
    return dropped


async def _forward_to(parts: Parts, contact: Contact, now: float) -> int:
    dropped = 0
    limit = parts.settings.daemon.batch_max
    while True:
        held = await relay_store.held_for(parts.db, contact.username, now, limit)
        batch = fit_batch(held, envelope_bytes)
        if not batch:
            return dropped
        try:
            result = await parts.client.deliver(
                contact.address or "", contact.username, batch, ack=True
            )
        except (PeerUnreachable, PeerRefused) as exc:
            log.info(
                "relay: handing %d envelopes to %s failed: %s",
                len(batch),
                contact.username,
                exc.message,
            )
            return dropped
        ack = result.ack
        if ack is None or not verify_ack(
            ack, contact.identity_key, relay=parts.me, to=contact.username
        ):
            log.warning(
                "relay: %s answered without a valid signed acknowledgement", contact.username
            )
            return dropped
        count = await relay_store.drop(parts.db, contact.username, ack.ids)
        dropped += count
        if count == 0:
            return dropped  # nothing acknowledged: do not spin


# --- the recipient's side: collect at start-up ------------------------------------------------


async def collect_once(parts: Parts) -> int:
    """Ask every online peer for envelopes held for us; store them; acknowledge. Returns how many
    envelopes were received."""
    peers = [
        c
        for c in await contact_store.list_contacts(parts.db)
        if c.status != "offline" and c.address and not c.key_changed
    ]
    slots = asyncio.Semaphore(parts.settings.daemon.probe_concurrency)

    async def from_peer(contact: Contact) -> int:
        async with slots:
            return await _collect_from(parts, contact)

    counts = await asyncio.gather(*(from_peer(c) for c in peers))
    return sum(counts)


async def _collect_from(parts: Parts, contact: Contact) -> int:
    received = 0
    for _ in range(100):  # bounded: at most 100 pages per peer per round
        try:
            collected = await parts.client.collect(contact.address or "", contact.username)
        except (PeerUnreachable, PeerRefused):
            return received
        if not collected.envelopes:
            return received
        try:
            _, result = await receive_batch(parts, EnvelopeBatch(envelopes=collected.envelopes))
        except BadRequest:
            return received
        received += len(collected.envelopes)
        try:
            await parts.client.relay_ack(
                contact.address or "", contact.username, ack_for(parts, contact.username, result)
            )
        except (PeerUnreachable, PeerRefused):
            return received
        if not collected.more:
            return received
    return received

"""Store-and-forward (PROTOCOL.md §13.3), the relay's side and the recipient's side.

A relay holds sealed envelopes it cannot read, within quotas, until their recipient is seen
online; it hands them over and drops them only on the recipient's signed acknowledgement. A
daemon that starts also asks online peers for anything held for it.

For a user this user blocked (PROTOCOL.md §12.4) it takes deposits as for anyone (a refusal would
tell the depositor whom this user blocked) but never calls them to hand anything over (nor can
they collect: the gate refuses their requests); what it holds for them expires as usual, or goes
to them once they are unblocked.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

from flame.core.models import (
    BatchResult,
    Collected,
    DepositBatch,
    Envelope,
    EnvelopeBatch,
    EnvelopeResult,
    RelayAck,
)
from flame.core.relays import depositor_tag, make_ack, verify_ack
from flame.core.transport import Endpoint
from flame.errors import BadRequest, Forbidden, PeerRefused, PeerUnreachable, Unavailable
from flame.net.peer_client import PeerClient
from flame.services.blocks import Blocks
from flame.services.context import Context
from flame.services.delivery import envelope_bytes, fit_batch
from flame.services.inbox import Inbox
from flame.store import contacts as contact_store
from flame.store import relay as relay_store
from flame.store.contacts import Contact

log = logging.getLogger("flame.relay")
COLLECT_PAGES_MAX = 100  # per peer per round


def _rejected(envelope: Envelope, code: str, message: str) -> EnvelopeResult:
    return EnvelopeResult(id=envelope.id, status="rejected", error=code, message=message)


@dataclass(eq=False)
class Relay:
    """A relay for others (quotas, hand-over on the recipient's signed acknowledgement), and the
    collector of what relays hold for this user."""

    ctx: Context
    client: PeerClient
    inbox: Inbox
    blocks: Blocks
    # Keys the depositor tags of this run; in memory only, so the rows of a past run name no one.
    tag_key: bytes = field(default_factory=lambda: os.urandom(32), init=False, repr=False)

    # --- as a relay ---------------------------------------------------------------------------

    async def held(self) -> int:
        """Envelopes this daemon holds for others, as a relay."""
        return await relay_store.held_count(self.ctx.db)

    async def accept_deposits(self, depositor: str, batch: DepositBatch) -> BatchResult:
        """Hold envelopes for their recipients, within quotas (PROTOCOL.md §13.3): per depositor,
        per recipient, and per depositor for one recipient a share of that recipient's quota, so
        that no one depositor can use up a recipient's whole allowance. Over quota: `over_quota`
        per envelope (the route answers 429 when nothing was taken)."""
        db = self.ctx.db
        settings = self.ctx.settings.daemon
        now = self.ctx.clock.now()
        share = settings.relay_depositor_share
        results: list[EnvelopeResult] = []
        tag = depositor_tag(self.tag_key, depositor)  # the rows keep no name (§13.3)
        by_depositor = await relay_store.usage_by_depositor(db, tag)
        taken: list[tuple[int, tuple[Envelope, float]]] = []
        usage: dict[str, tuple[relay_store.Usage, relay_store.Usage]] = {}  # recipient, pair
        for deposit in batch.deposits:
            envelope = deposit.envelope
            refusal = await self._refusal(depositor, envelope)
            if refusal is not None:
                results.append(refusal)
                continue
            to = envelope.to
            current, pair = usage.get(to) or (
                await relay_store.usage_by_recipient(db, to),
                await relay_store.usage_by_pair(db, tag, to),
            )
            size = len(envelope.model_dump_json())
            if (
                by_depositor.count + 1 > settings.relay_max_per_depositor
                or current.count + 1 > settings.relay_max_per_recipient
                or current.size + size > settings.relay_max_bytes_per_recipient
                or pair.count + 1 > share * settings.relay_max_per_recipient
                or pair.size + size > share * settings.relay_max_bytes_per_recipient
            ):
                results.append(
                    _rejected(envelope, "over_quota", "This relay holds its quota already.")
                )
                continue
            by_depositor = by_depositor.plus(size)
            usage[to] = (current.plus(size), pair.plus(size))
            expires_at = min(float(deposit.expires_at), now + settings.relay_ttl_s)
            taken.append((len(results), (envelope, expires_at)))
            results.append(EnvelopeResult(id=envelope.id, status="stored"))
        fresh = await relay_store.store_deposits(db, tag, [pair for _, pair in taken])
        for (index, _), is_new in zip(taken, fresh, strict=True):
            if not is_new:
                results[index] = EnvelopeResult(id=results[index].id, status="duplicate")
        if taken:
            self.ctx.wake.relay.set()
        return BatchResult(results=results)

    async def _refusal(self, depositor: str, envelope: Envelope) -> EnvelopeResult | None:
        """Why this relay will not hold `envelope` whatever its quotas, if it will not."""
        if envelope.to in (self.ctx.me, depositor):
            return _rejected(envelope, "bad_deposit", "A relay holds envelopes for third parties.")
        if await contact_store.get_contact(self.ctx.db, envelope.to) is None:
            return _rejected(
                envelope, "unknown_recipient", "This relay does not know the recipient."
            )
        return None

    async def collect(self, recipient: str, limit: int) -> Collected:
        """What this relay holds for the caller; only the recipient itself may collect."""
        held = await relay_store.held_for(self.ctx.db, recipient, self.ctx.clock.now(), limit + 1)
        page = fit_batch(held[:limit], envelope_bytes)  # an answer stays near BATCH_BYTES
        return Collected(envelopes=page, more=len(held) > len(page))

    async def accept_ack(self, signer: str, ack: RelayAck) -> int:
        """Drop what the recipient acknowledged, if the recipient itself signed it."""
        contact = await contact_store.get_contact(self.ctx.db, signer)
        if ack.to != signer or contact is None:
            raise Forbidden("Only the recipient may acknowledge its envelopes.", code="bad_ack")
        if not verify_ack(ack, contact.identity_key, relay=self.ctx.me, to=signer):
            raise Forbidden("The acknowledgement is not signed by its recipient.", code="bad_ack")
        return await relay_store.drop(self.ctx.db, signer, ack.ids)

    def ack_for(self, relay: str, result: BatchResult) -> RelayAck:
        """Our signed word to a relay that it may drop what it handed us (PROTOCOL.md §13.3):
        what we hold (stored, duplicate) and what we refused for good (junk that did not open or
        did not parse, say); only what we could not take *now* (`unavailable`) stays with it."""
        ids = [r.id for r in result.results if r.error != Unavailable.code]
        identity = self.ctx.keys.identity()
        return make_ack(identity, relay, self.ctx.me, ids, int(self.ctx.clock.now()))

    async def forward_once(self) -> int:
        """Hand held envelopes to recipients that are online. Returns how many were dropped on
        the recipients' signed acknowledgements."""
        db = self.ctx.db
        now = self.ctx.clock.now()
        await relay_store.purge_expired(db, now)
        dropped = 0
        for recipient in await relay_store.recipients(db, now):
            if await self.blocks.is_blocked(recipient):  # this user calls no one it blocked
                continue
            contact = await contact_store.get_contact(db, recipient)
            if contact is None or contact.status == "offline" or contact.endpoint is None:
                continue
            dropped += await self._forward_to(contact, contact.endpoint, now)
        return dropped

    async def _forward_to(self, contact: Contact, recipient: Endpoint, now: float) -> int:
        dropped = 0
        limit = self.ctx.settings.daemon.batch_max
        while True:
            held = await relay_store.held_for(self.ctx.db, contact.username, now, limit)
            batch = fit_batch(held, envelope_bytes)
            if not batch:
                return dropped
            try:
                result = await self.client.deliver(recipient, batch, ack=True)
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
                ack, contact.identity_key, relay=self.ctx.me, to=contact.username
            ):
                log.warning(
                    "relay: %s answered without a valid signed acknowledgement", contact.username
                )
                return dropped
            count = await relay_store.drop(self.ctx.db, contact.username, ack.ids)
            dropped += count
            if count == 0:
                return dropped  # nothing acknowledged: do not spin

    # --- as the recipient: collect at start-up ------------------------------------------------

    async def collect_once(self) -> int:
        """Ask every online peer for envelopes held for us; store them; acknowledge. Returns how
        many envelopes were received. A peer this user blocked is not asked (§12.4)."""
        blocked = await self.blocks.names()
        peers = [
            (c, e)
            for c in await contact_store.list_contacts(self.ctx.db)
            if c.status != "offline"
            and (e := c.endpoint) is not None
            and not c.key_changed
            and c.username not in blocked
        ]
        slots = asyncio.Semaphore(self.ctx.settings.daemon.probe_concurrency)

        async def from_peer(contact: Contact, relay: Endpoint) -> int:
            async with slots:
                return await self._collect_from(contact, relay)

        counts = await asyncio.gather(*(from_peer(c, e) for c, e in peers))
        return sum(counts)

    async def _collect_from(self, contact: Contact, relay: Endpoint) -> int:
        received = 0
        for _ in range(COLLECT_PAGES_MAX):
            try:
                collected = await self.client.collect(relay)
            except (PeerUnreachable, PeerRefused):
                return received
            if not collected.envelopes:
                return received
            try:
                _, result = await self.inbox.receive_batch(
                    EnvelopeBatch(envelopes=collected.envelopes)
                )
            except BadRequest:
                return received
            received += len(collected.envelopes)
            try:
                await self.client.relay_ack(relay, self.ack_for(contact.username, result))
            except (PeerUnreachable, PeerRefused):
                return received
            if not collected.more:
                return received
        return received

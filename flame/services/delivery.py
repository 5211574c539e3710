"""Delivery from the outbox (PROTOCOL.md §7.2, §13): direct to the recipient's daemon with
backoff, one batch in flight per recipient in queue order; after a while also through relays;
expiry turns what never arrived into a visible failure."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from flame.clock import wait_event
from flame.core.actions import QUEUED_ACTIONS
from flame.core.group_models import GROUP_COPY_KINDS
from flame.core.models import SEQUENCED_KINDS, Deposit, Envelope
from flame.core.outbox import next_attempt
from flame.core.relays import choose_relays
from flame.core.transport import Endpoint
from flame.errors import FlameError, PeerRefused, PeerUnreachable, Unavailable
from flame.net.peer_client import PeerClient
from flame.services.blocks import Blocks
from flame.services.context import Context
from flame.services.events import ActionFailed, MessageStateChanged
from flame.services.status import StatusTracker
from flame.store import contacts as contact_store
from flame.store import group_held
from flame.store import messages as message_store
from flame.store import outbox as outbox_store
from flame.store.group_held import HELD_REASON
from flame.store.outbox import OutboxEntry

log = logging.getLogger("flame.delivery")

# Refusals that no retry can fix: the message is failed with the reason.
PERMANENT_CODES = {
    "wrong_recipient",
    "bad_envelope",
    "rejected",
    "sender_key_mismatch",
    "unknown_sender",
    "old_version",  # the peer refuses the version this daemon speaks (PROTOCOL.md §14.2)
}
NO_SESSION = "no_session"
# Whose state changes the UI is told of; control kinds stay quiet.
SHOWN_STATES = {*SEQUENCED_KINDS, *GROUP_COPY_KINDS}
RETRIED_CODES = {Unavailable.code, NO_SESSION}
CRASH_BACKOFF_MIN_S = 1.0  # a crashed worker's peer waits at least this long, whatever the settings
BATCH_BYTES = 1024 * 1024  # receivers accept at least 4 MiB (PROTOCOL.md §7); stay well below
T = TypeVar("T")


def envelope_bytes(envelope: Envelope) -> int:
    """About what an envelope adds to a request body."""
    return len(envelope.ct) + len(envelope.sk) + 200


def fit_batch(items: Sequence[T], size_of: Callable[[T], int]) -> list[T]:
    """The longest prefix that fits in BATCH_BYTES (at least one item, however large): a batch
    of small messages, or one inline file (about 1.9 MB) alone."""
    size = 0
    for count, item in enumerate(items):
        size += size_of(item)
        if size > BATCH_BYTES and count > 0:
            return list(items[:count])
    return list(items)


def entry_bytes(entry: OutboxEntry) -> int:
    return envelope_bytes(entry.envelope)


@dataclass(eq=False)
class Delivery:
    ctx: Context
    client: PeerClient
    # Version 2: start a new session with a peer that could not open ours, sealing what is queued
    # again under it (PROTOCOL.md §14.9); True when it did.
    reset_session: Callable[[str], Awaitable[bool]]
    status: StatusTracker  # appearing offline, nothing goes to peers by itself (§12.2)
    blocks: Blocks  # no one this user blocked is asked to relay (§12.4)

    async def pending(self) -> int:
        """Envelopes still queued for peers that have not acknowledged them."""
        return await outbox_store.pending_count(self.ctx.db)

    async def run(self) -> None:
        """The loop: one delivery worker per peer with due envelopes (one batch in flight per
        peer keeps order); sleep until the next entry is due or something wakes the outbox.

        A worker that crashes (a bug: a peer's bad data fails only that peer, with the persisted
        backoff of `reschedule`) is logged and held back with growing delays before its peer is
        tried again, so one peer can never make this loop spin."""
        wake = self.ctx.wake.outbox
        running: dict[str, asyncio.Task[int]] = {}
        held: dict[str, tuple[int, float]] = {}  # peer -> (crashes in a row, not before)

        def finished(peer: str, task: asyncio.Task[int]) -> None:
            running.pop(peer, None)
            error = None if task.cancelled() else task.exception()
            if error is None:
                held.pop(peer, None)
            else:
                crashes = held.get(peer, (0, 0.0))[0]
                settings = self.ctx.settings.daemon
                now = self.ctx.clock.now()
                until = next_attempt(
                    crashes,
                    now,
                    base_s=max(settings.retry_base_s, CRASH_BACKOFF_MIN_S),
                    max_s=max(settings.retry_max_s, CRASH_BACKOFF_MIN_S),
                    jitter=random.random(),
                )
                held[peer] = (crashes + 1, until)
                log.error(
                    "delivery to %s crashed; trying again in %.1f s",
                    peer,
                    until - now,
                    exc_info=error,
                )
            wake.set()

        try:
            while True:
                wake.clear()
                now = self.ctx.clock.now()
                next_due: float | None = None
                for peer, due in await outbox_store.outbox_peers(self.ctx.db):
                    if peer in running or not self.status.may_reach(peer):
                        continue  # a peer held back while hidden: its queue waits for a wake-up
                    due = max(due, held.get(peer, (0, 0.0))[1])
                    if due <= now:
                        task = asyncio.create_task(self.deliver_to_peer(peer), name=f"to:{peer}")
                        running[peer] = task
                        task.add_done_callback(functools.partial(finished, peer))
                    else:
                        next_due = due if next_due is None else min(next_due, due)
                await wait_event(wake, None if next_due is None else max(0.0, next_due - now))
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def deliver_to_peer(self, peer: str) -> int:
        """Send every due outbox entry for `peer`, in batches, in order. Returns how many were
        acknowledged. Failures are rescheduled with backoff; permanent refusals mark the message
        failed with the reason."""
        db = self.ctx.db
        delivered = 0
        limit = self.ctx.settings.daemon.batch_max
        has_reset = False  # one session reset per round: a peer that keeps failing backs off
        while True:
            now = self.ctx.clock.now()
            entries = fit_batch(await outbox_store.due_entries(db, peer, now, limit), entry_bytes)
            if not entries:
                return delivered
            contact = await contact_store.get_contact(db, peer)
            if contact is not None and contact.key_changed:
                # A group message's copies wait for the new key to be accepted (§19.5).
                held = [e for e in entries if e.kind in GROUP_COPY_KINDS]
                await group_held.hold_queued(db, [(e.message_id, peer) for e in held], now)
                self.publish_states(held, "sending", HELD_REASON.format(member=peer))
                entries = [e for e in entries if e.kind not in GROUP_COPY_KINDS]
                if not entries:
                    continue
            if contact is None or contact.key_changed:
                reason = (
                    f"{peer}'s identity key changed; accept the new key to send again."
                    if contact is not None
                    else f"{peer} is not a known user."
                )
                await self.fail(entries, reason)
                return delivered
            recipient = contact.endpoint
            if recipient is None:
                await self.reschedule(peer, entries, "the recipient has no known address", None)
                return delivered
            try:
                result = await self.client.deliver(recipient, [e.envelope for e in entries])
            except FlameError as exc:
                # PeerUnreachable, PeerRefused, or anything else the peer's data made fail: this
                # peer's failure, retried with the persisted backoff, never a crash of the worker.
                refused = exc if isinstance(exc, PeerRefused) else None
                if refused is not None and refused.http_status == 413 and len(entries) > 1:
                    limit = max(1, len(entries) // 2)  # the peer takes smaller bodies: split
                    continue
                if refused is not None and (
                    refused.code in PERMANENT_CODES or refused.http_status == 413
                ):
                    await self.fail(entries, f"{peer}'s daemon refused it: {exc.message}")
                    return delivered
                retry_after = None if refused is None else refused.retry_after_s
                await self.reschedule(peer, entries, exc.message, retry_after)
                return delivered
            by_id = {r.id: r for r in result.results}  # the peer answers by envelope id
            answers = [(e, by_id.get(e.envelope.id)) for e in entries]
            sent = [e for e, r in answers if r is not None and r.status != "rejected"]
            # No answer, or "not now" (PROTOCOL.md §7.2: `unavailable`; §14.9: `no_session`, sent
            # again under a new session): tried again later.
            missing = [e for e, r in answers if r is None or r.error in RETRIED_CODES]
            later = {e.message_id for e in missing}
            await outbox_store.mark_sent(db, [e.message_id for e in sent])
            self.publish_states(sent, "sent", None)
            for entry, answer in answers:
                if (
                    answer is not None
                    and answer.status == "rejected"
                    and entry.message_id not in later
                ):
                    reason = f"{peer}'s daemon refused it: {answer.message or answer.error}"
                    await self.fail([entry], reason)
            delivered += len(sent)
            broken = any(r is not None and r.error == NO_SESSION for _, r in answers)
            if broken and not has_reset:
                has_reset = True
                if await self.reset_session(peer):
                    continue  # everything queued was sealed again, and is due now
            if missing:
                await self.reschedule(peer, missing, "the peer did not take it yet", None)
                return delivered

    async def fail(self, entries: list[OutboxEntry], reason: str) -> None:
        await outbox_store.mark_failed(self.ctx.db, [(e.message_id, reason) for e in entries])
        self.publish_states(entries, "failed", reason)
        for entry in entries:  # an edit, delete or reaction: the UI says which message it was
            action = None
            if entry.kind in QUEUED_ACTIONS:
                action = await message_store.get_message(self.ctx.db, entry.message_id)
            target = None if action is None else action.body.get("target")
            if isinstance(target, dict):
                key = f"{target.get('author')}:{target.get('id')}"
                self.ctx.events.publish(ActionFailed(entry.peer, key, entry.kind, reason))

    async def reschedule(
        self, peer: str, entries: list[OutboxEntry], error: str, retry_after_s: float | None
    ) -> None:
        settings = self.ctx.settings.daemon
        now = self.ctx.clock.now()
        retries = [
            (
                e.message_id,
                next_attempt(
                    e.attempts,
                    now,
                    base_s=settings.retry_base_s,
                    max_s=settings.retry_max_s,
                    jitter=random.random(),
                    retry_after_s=retry_after_s,
                ),
                error,
            )
            for e in entries
        ]
        await outbox_store.mark_retry(self.ctx.db, retries)
        log.info("delivery to %s deferred (%d envelopes): %s", peer, len(entries), error)

    def publish_states(self, entries: list[OutboxEntry], state: str, error: str | None) -> None:
        for entry in entries:
            if entry.kind in SHOWN_STATES:  # conversation messages, group copies (§19.5)
                self.ctx.events.publish(
                    MessageStateChanged(entry.message_id, entry.peer, state, error)
                )

    # --- relays, from the sender's side -------------------------------------------------------

    async def deposit_once(self) -> int:
        """Leave copies of long-undelivered envelopes with relays (PROTOCOL.md §13.3). Direct
        delivery goes on; whichever path arrives first wins and the rest is absorbed by id.
        Returns how many envelopes at least one relay accepted."""
        db = self.ctx.db
        settings = self.ctx.settings.daemon
        if settings.relay_count == 0 or self.status.is_hidden:  # a relay would see the user up
            return 0
        now = self.ctx.clock.now()
        entries = await outbox_store.to_relay(
            db, now, settings.relay_after_s, settings.relay_retry_s
        )
        if not entries:
            return 0
        blocked = await self.blocks.names()
        by_name = {
            c.username: e
            for c in await contact_store.list_contacts(db)
            if c.status != "offline"
            and (e := c.endpoint) is not None
            and not c.key_changed
            and c.username not in blocked
        }
        by_recipient: dict[str, list[OutboxEntry]] = defaultdict(list)
        for entry in entries:
            by_recipient[entry.peer].append(entry)
        accepted_total = 0
        for recipient, group in by_recipient.items():
            relays = choose_relays(recipient, list(by_name), settings.relay_count)
            await outbox_store.mark_relay_tried(db, [e.message_id for e in group], now)
            if not relays:
                continue
            outcomes = await asyncio.gather(
                *(self._deposit(by_name[relay], group) for relay in relays)
            )
            accepted = {message_id for ids, _ in outcomes for message_id in ids}
            refusals = [reason for _, reason in outcomes if reason is not None]
            changed = await outbox_store.mark_relayed(db, sorted(accepted), now)
            self.publish_states([e for e in group if e.message_id in changed], "relayed", None)
            accepted_total += len(accepted)
            refused_by_all = [e for e in group if e.message_id not in accepted]
            if refused_by_all and len(refusals) == len(relays):
                # Every relay said no (for instance over quota): tell the user now; direct
                # delivery still goes on until the message expires.
                reason = "every relay refused it: " + "; ".join(sorted(set(refusals)))
                await outbox_store.mark_relay_refused(
                    db, [e.message_id for e in refused_by_all], reason
                )
                self.publish_states(refused_by_all, "failed", reason)
        return accepted_total

    async def _deposit(
        self, relay: Endpoint, entries: list[OutboxEntry]
    ) -> tuple[list[str], str | None]:
        """Deposit with one relay, in batches of at most BATCH_BYTES: (accepted message ids, the
        refusal reason if it refused)."""
        ttl = self.ctx.settings.daemon.relay_ttl_s
        accepted: list[str] = []
        rest = entries
        while rest:
            batch = fit_batch(rest, entry_bytes)
            rest = rest[len(batch) :]
            deposits = [
                Deposit(envelope=e.envelope, expires_at=int(e.created_at + ttl)) for e in batch
            ]
            try:
                result = await self.client.deposit(relay, deposits)
            except PeerUnreachable:
                return accepted, None
            except PeerRefused as exc:
                return accepted, f"{relay.owner}: {exc.message}"
            stored = {r.id for r in result.results if r.status != "rejected"}
            accepted += [e.message_id for e in batch if e.envelope.id in stored]
        return accepted, None

    async def expire_once(self) -> int:
        """Give up on what has waited past its lifetime: failed, with the reason."""
        entries = await outbox_store.expired(self.ctx.db, self.ctx.clock.now())
        if entries:
            await self.fail(
                entries,
                "not delivered in time: the recipient did not come online "
                "and no relay could hand it over before it expired",
            )
        return len(entries)

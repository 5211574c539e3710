"""Receiving envelopes (PROTOCOL.md §6.5, §7.2): every envelope of a batch is opened and checked
before anything is stored; each kind of inner message goes to its receiver, which commits before
it returns; only then does the peer get its 2xx.

Each envelope succeeds or fails on its own: a refused one never holds the others back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flame.core import envelope as envelope_rules
from flame.core.models import BatchResult, Envelope, EnvelopeBatch, EnvelopeResult
from flame.errors import (
    BadEnvelope,
    DecryptionFailed,
    LockedError,
    RequestError,
    TooManyRequests,
    Unavailable,
)
from flame.services.blocks import Blocks
from flame.services.contacts import Contacts
from flame.services.context import Context
from flame.services.events import KeyChanged, MessageAdded
from flame.services.receipts import Receipts
from flame.services.sessions import Sessions
from flame.store import actions as action_store
from flame.store import messages as message_store
from flame.store.contacts import Contact
from flame.store.messages import Incoming

log = logging.getLogger("flame.inbox")
# Per item: True stored, False a duplicate, or the reason it is refused (PROTOCOL.md §7.2).
Receiver = Callable[[list[Incoming]], Awaitable[Sequence[bool | RequestError]]]
# Kinds taken from a contact even when written while they were blocked (PROTOCOL.md §12.4): a
# receipt moves only this user's own messages on, a delete only takes back what they wrote before.
KEPT_FROM_A_BLOCK = ("receipt", "delete")


@dataclass(eq=False)
class Inbox:
    ctx: Context
    contacts: Contacts
    blocks: Blocks
    receipts: Receipts
    sessions: Sessions
    # What the daemon does with each kind of inner message (core.models.KIND_BODIES lists them);
    # the composition root adds the receivers of the other services.
    receivers: dict[str, Receiver] = field(default_factory=dict, init=False)
    # Envelopes this daemon tried to open (tests prove that blocks cost none).
    decryptions: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.receivers["text"] = self.receive_texts

    async def receive_batch(self, batch: EnvelopeBatch) -> tuple[int, BatchResult]:
        """Open, check and store a batch. Returns the HTTP status and per-envelope results.

        200 when every envelope was stored or was a duplicate; otherwise the status of the first
        refusal, with the good envelopes of the batch stored all the same.
        """
        exchange_key = self.ctx.keys.identity().exchange
        now = self.ctx.clock.now()
        results: list[EnvelopeResult | None] = []
        statuses: dict[int, int] = {}  # index of a refused envelope -> its HTTP status
        accepted: list[tuple[int, Incoming]] = []
        authors: dict[str, Contact | None] = {}  # one contact lookup per author per batch
        for envelope in batch.envelopes:
            try:
                incoming = await self._open_checked(exchange_key, envelope, now, authors)
            except RequestError as exc:
                statuses[len(results)] = exc.status
                results.append(_refused(envelope.id, exc))
                continue
            accepted.append((len(results), incoming))
            results.append(None)
        accepted = await self._open_ratchets(accepted, results, statuses)
        accepted = await self._drop_written_while_blocked(accepted, results)
        by_kind: dict[str, list[tuple[int, Incoming]]] = {}
        for index, item in accepted:
            by_kind.setdefault(item.inner.kind, []).append((index, item))
        for kind, group in by_kind.items():
            outcomes = await self._receive(kind, [item for _, item in group])
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

    async def _open_ratchets(
        self,
        accepted: list[tuple[int, Incoming]],
        results: list[EnvelopeResult | None],
        statuses: dict[int, int],
    ) -> list[tuple[int, Incoming]]:
        """Version 2: the inner message inside each `ratchet` (PROTOCOL.md §14.6), opened and
        stored with its session's new state before any receiver sees it."""
        outer = [(index, item) for index, item in accepted if item.inner.kind == "ratchet"]
        if not outer:
            return accepted
        opened = await self.sessions.open_all([item.inner for _, item in outer])
        inners = {index: result for (index, _), result in zip(outer, opened, strict=True)}
        kept = []
        for index, item in accepted:
            inner = inners.get(index, item.inner)
            if isinstance(inner, RequestError):
                statuses[index] = inner.status
                results[index] = _refused(item.inner.id, inner)
                continue
            if isinstance(inner, str):  # ERASED: opened before, then deleted (PROTOCOL.md §17.3)
                results[index] = EnvelopeResult(id=item.inner.id, status="duplicate")
                continue
            version = 2 if index in inners else 1
            kept.append(
                (index, Incoming(inner=inner, received_at=item.received_at, version=version))
            )
        return kept

    async def _drop_written_while_blocked(
        self, accepted: list[tuple[int, Incoming]], results: list[EnvelopeResult | None]
    ) -> list[tuple[int, Incoming]]:
        """What a contact wrote while this user blocked them stays unseen after the unblock
        (PROTOCOL.md §12.4): accepted, so that its sender stops retrying, and dropped: nothing
        stored, shown or receipted. Receipts and deletes are kept (KEPT_FROM_A_BLOCK)."""
        kept = []
        for index, item in accepted:
            inner = item.inner
            if inner.kind not in KEPT_FROM_A_BLOCK and await self.blocks.wrote_while_blocked(
                inner.from_, inner.ts / 1000
            ):
                results[index] = EnvelopeResult(id=inner.id, status="stored")
                continue
            kept.append((index, item))
        return kept

    async def _receive(self, kind: str, items: list[Incoming]) -> Sequence[bool | RequestError]:
        """One kind's receiver over its envelopes of the batch, in one transaction. Should it fail
        as a whole, each envelope is tried alone, so that one envelope (a bug it trips) fails on
        its own and the others are stored all the same."""
        receiver = self.receivers[kind]
        if len(items) > 1:
            try:
                return await receiver(items)
            except Exception:
                pass  # tried one by one below, where a failure is logged
        outcomes: list[bool | RequestError] = []
        for item in items:
            try:
                outcomes.extend(await receiver([item]))
            except RequestError as exc:
                outcomes.append(exc)
            except LockedError:
                raise  # locked meanwhile (the user logged out): 503, the sender comes back
            except Exception:
                log.exception("receiving a %s envelope failed", kind)
                outcomes.append(Unavailable("This daemon could not store it now."))
        return outcomes

    async def receive_texts(self, items: list[Incoming]) -> list[bool]:
        """Store text messages and their delivered receipts in one transaction, then show the new
        ones. True: new; False: duplicate."""
        ctx = self.ctx
        receipts = self.receipts.delivered(items)
        stored = await message_store.store_incoming(ctx.db, items, receipts)
        new = await action_store.decorate(ctx.db, [m for m in stored if m is not None])
        for message in new:  # a reply shows what it quotes (PROTOCOL.md §17.1)
            ctx.events.publish(MessageAdded(message))
        if receipts:
            self.receipts.owing()
        return [message is not None for message in stored]

    async def _open_checked(
        self,
        exchange_key: X25519PrivateKey,
        envelope: Envelope,
        now: float,
        authors: dict[str, Contact | None],
    ) -> Incoming:
        self.decryptions += 1
        opened = envelope_rules.open_envelope(
            exchange_key,
            self.ctx.me,
            envelope,
            self.ctx.settings.security.versions,
            statics=self.ctx.keys.identity().static_secret,
        )
        author = opened.inner.from_
        if await self.blocks.is_blocked(author):
            # Written by someone this user blocked, brought by someone else (PROTOCOL.md §12.4):
            # refused like any envelope that does not open, so nobody learns why.
            raise DecryptionFailed("The envelope was rejected.")
        if author not in authors:
            try:
                authors[author] = await self.contacts.find(author, for_peer=True)
            except TooManyRequests as exc:
                # Not now, not never: the sender keeps it and tries again (PROTOCOL.md §7.2).
                raise Unavailable(exc.message) from exc
        contact = authors[author]
        if contact is None:
            raise BadEnvelope("The author is not a known user.", code="unknown_sender")
        if opened.sender_key != contact.x25519_key:
            # Sealed with a key that is not the pinned one: a key change (or a forgery). Refused.
            self.ctx.events.publish(KeyChanged(author))
            raise BadEnvelope(
                "The sender key is not the one pinned for the author.", code="sender_key_mismatch"
            )
        return Incoming(inner=opened.inner, received_at=now)


def _refused(envelope_id: str, exc: RequestError) -> EnvelopeResult:
    return EnvelopeResult(id=envelope_id, status="rejected", error=exc.code, message=exc.message)

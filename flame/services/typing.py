"""Typing notices (PROTOCOL.md §17.5): sent straight to an online contact, never queued in the
outbox nor left with relays, at most one "typing" per contact every TYPING_INTERVAL_S, and never
while this user is busy or appears offline; received within a bucket per author, shown for
TYPING_TTL_S unless renewed, and never stored."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from flame.core import actions as rules
from flame.core.actions import TypingBody
from flame.core.ratelimit import TokenBuckets
from flame.errors import FlameError, RequestError, TooManyRequests
from flame.net.peer_client import PeerClient
from flame.services.blocks import Blocks
from flame.services.context import Context
from flame.services.events import TypingChanged
from flame.services.sealing import seal_control
from flame.services.sessions import Sessions
from flame.services.status import StatusTracker
from flame.store import contacts as contact_store
from flame.store import sessions as session_store
from flame.store.messages import Incoming

log = logging.getLogger("flame.typing")
QUIET_STATUSES = ("busy", "offline")  # this user's choices that send no typing notice


def _buckets() -> TokenBuckets:
    return TokenBuckets(rules.TYPING_RATE_PER_S, rules.TYPING_BURST, max_keys=10_000)


@dataclass(eq=False)
class Typing:
    ctx: Context
    client: PeerClient
    sessions: Sessions
    status: StatusTracker
    blocks: Blocks
    sent_at: dict[str, float] = field(default_factory=dict, init=False)  # peer -> last "typing"
    in_flight: set[str] = field(default_factory=set, init=False)
    buckets: TokenBuckets = field(default_factory=_buckets, init=False)

    async def notify(self, peer: str, typing: bool) -> bool:
        """This user is writing to `peer` (or stopped). True when a notice went out: none goes
        to a contact who is offline or blocked, while this user is busy or appears offline, more
        often than the pace allows, or to say "stopped" where nothing was said."""
        ctx = self.ctx
        if self.status.choice in QUIET_STATUSES or peer in self.in_flight:
            return False
        now = ctx.clock.now()
        if not rules.typing_due(typing, self.sent_at.get(peer), now):
            return False
        contact = await contact_store.get_contact(ctx.db, peer)
        if contact is None or contact.key_changed or contact.status == "offline":
            return False
        endpoint = contact.endpoint
        if endpoint is None or await self.blocks.is_blocked(peer):
            return False
        self.in_flight.add(peer)
        try:
            sealed = await seal_control(
                ctx, self.sessions, contact, "typing", TypingBody(typing=typing)
            )
            if sealed is None:
                return False
            if sealed.ratchet is not None:  # the session's state is on disk before its message
                await session_store.save_sessions(ctx.db, [sealed.ratchet[0]])
            if typing:
                self.sent_at[peer] = now
            else:
                self.sent_at.pop(peer, None)
            async with asyncio.timeout(rules.TYPING_TTL_S):
                await self.client.deliver(endpoint, [sealed.envelope])
        except (FlameError, TimeoutError) as exc:
            log.debug("typing notice to %s not sent: %s", peer, exc)
            return False
        finally:
            self.in_flight.discard(peer)
        return True

    async def receive(self, items: list[Incoming]) -> list[bool | RequestError]:
        """Shown, not stored: True when shown, False when stale (written too long ago by the
        author's clock, or relayed); over the author's bucket, 429 `rate_limited`."""
        outcomes: list[bool | RequestError] = []
        for item in items:
            body = item.inner.body
            assert isinstance(body, TypingBody)  # core.models.KIND_BODIES
            author = item.inner.from_
            wait = self.buckets.take(author, item.received_at)
            if wait > 0:
                outcomes.append(
                    TooManyRequests(
                        "Too many typing notices; slow down.",
                        retry_after_s=self.buckets.retry_after_s(wait),
                    )
                )
                continue
            if rules.is_stale_typing(item.inner.ts, item.received_at):
                outcomes.append(False)
                continue
            expires = rules.TYPING_TTL_S if body.typing else 0.0
            self.ctx.events.publish(TypingChanged(author, body.typing, expires))
            outcomes.append(True)
        return outcomes

"""Inner messages from this user, sealed to a contact's pinned key (PROTOCOL.md §6): the one place
that stamps `from`, a fresh id and the time, for conversation messages and control kinds alike."""

from __future__ import annotations

from flame.core import envelope as envelope_rules
from flame.core.models import Envelope, Inner, Wire
from flame.services.context import Context
from flame.store.contacts import Contact


def new_inner(ctx: Context, to: str, kind: str, body: Wire, seq: int = 0) -> Inner:
    """An inner message; control kinds (receipts, cancels) carry seq 0, outside the order."""
    return Inner(
        from_=ctx.me,
        to=to,
        id=envelope_rules.new_message_id(),
        seq=seq,
        ts=int(ctx.clock.now() * 1000),
        kind=kind,
        body=body,
    )


def seal_inner(ctx: Context, peer_key: bytes, inner: Inner) -> Envelope:
    return envelope_rules.seal(ctx.keys.identity().exchange, inner.to, peer_key, inner)


def seal_control(ctx: Context, contact: Contact, kind: str, body: Wire) -> Envelope:
    """Seal a control message (sequence number 0) to a contact's pinned key."""
    return seal_inner(ctx, contact.x25519_key, new_inner(ctx, contact.username, kind, body))

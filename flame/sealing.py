"""Sealing control messages (receipts and other kinds outside the conversation order)."""

from __future__ import annotations

from flame.core import envelope as envelope_rules
from flame.core.models import Envelope, Inner, Wire
from flame.parts import Parts
from flame.store.contacts import Contact


def seal_control(parts: Parts, contact: Contact, kind: str, body: Wire) -> Envelope:
    """Seal a control message (sequence number 0) to a contact's pinned key."""
    identity = parts.require_identity()
    inner = Inner(
        from_=parts.me,
        to=contact.username,
        id=envelope_rules.new_message_id(),
        seq=0,
        ts=int(parts.clock.now() * 1000),
        kind=kind,
        body=body,
    )
    return envelope_rules.seal(identity.exchange, contact.username, contact.x25519_key, inner)

"""Inner messages from this user, sealed for a contact (PROTOCOL.md §6, §14): the one place that
stamps `from`, a fresh id and the time, for conversation messages and control kinds alike. The
version and the session are the Sessions service's choice."""

from __future__ import annotations

import logging

from flame.core import envelope as envelope_rules
from flame.core.models import Inner, Wire
from flame.errors import RequestError
from flame.services.context import Context
from flame.services.sessions import SealedEnvelope, Sessions
from flame.store.contacts import Contact

log = logging.getLogger("flame.sealing")


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


async def seal_control(
    ctx: Context, sessions: Sessions, contact: Contact, kind: str, body: Wire
) -> SealedEnvelope | None:
    """Seal a control message (sequence number 0) for a contact; None (logged) when no version
    both allow is possible without a new session: control messages are best effort."""
    inner = new_inner(ctx, contact.username, kind, body)
    try:
        return await sessions.seal(contact, inner)
    except RequestError as exc:
        log.warning("could not seal a %s for %s: %s", kind, contact.username, exc.message)
        return None

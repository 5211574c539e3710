"""Each peer's outbox queue is first in, first out (PROTOCOL.md §7.2): what is queued later never
overtakes what is backing off, and a peer seen online makes its whole queue due."""

from __future__ import annotations

from flame.core.crypto import Identity
from flame.core.envelope import new_message_id, seal
from flame.core.models import Inner, TextBody
from flame.store import outbox as outbox_store
from flame.store.db import Database

NOW = 1_700_000_000.0


async def queue(db: Database, peer: str, key: str, at: float) -> None:
    me, them = Identity.generate(), Identity.generate()
    inner = Inner(
        from_="alice",
        to=peer,
        id=new_message_id(),
        seq=1,
        ts=0,
        kind="text",
        body=TextBody(text=key),
    )
    envelope = seal(me.exchange, peer, them.x25519_key, inner)
    async with db.transaction() as conn:
        await outbox_store.enqueue(
            conn, [outbox_store.Queued(key, "text", peer, envelope)], at, 3600.0
        )


async def test_a_later_entry_waits_behind_one_that_backs_off(db: Database) -> None:
    await queue(db, "bob", "offer", NOW)
    await outbox_store.mark_retry(db, [("offer", NOW + 60, "bob is away")])
    await queue(db, "bob", "cancel", NOW + 1)  # new, so due at once on its own
    await queue(db, "carol", "hello", NOW + 1)

    assert await outbox_store.due_entries(db, "bob", NOW + 2, 100) == []
    assert dict(await outbox_store.outbox_peers(db)) == {"bob": NOW + 60, "carol": NOW + 1}
    due = await outbox_store.due_entries(db, "carol", NOW + 2, 100)
    assert [e.message_id for e in due] == ["hello"]  # other peers' queues are not held up

    later = await outbox_store.due_entries(db, "bob", NOW + 61, 100)
    assert [e.message_id for e in later] == ["offer", "cancel"]


async def test_a_peer_seen_online_makes_its_queue_due_and_keeps_the_attempts(
    db: Database,
) -> None:
    await queue(db, "bob", "first", NOW)
    await queue(db, "bob", "second", NOW)
    await outbox_store.mark_retry(db, [("first", NOW + 300, "away"), ("second", NOW + 300, "away")])
    await outbox_store.due_now(db, ["bob"])
    due = await outbox_store.due_entries(db, "bob", NOW, 100)
    assert [(e.message_id, e.attempts) for e in due] == [("first", 1), ("second", 1)]

"""A receipt's cost at the sender does not grow with the conversation's history: its messages are
found by id (PROTOCOL.md §13.2), never by a scan of everything ever sent to that peer. Counted in
SQLite's own virtual-machine steps (deterministic, unlike time)."""

from __future__ import annotations

from flame.store import messages as message_store
from flame.store.db import Database

STEPS_PER_CALL = 100  # SQLite calls the progress handler every this many VM instructions


def history(db: Database, first: int, count: int) -> None:
    """`count` messages to bob already in the conversation (written raw: only their rows count)."""
    db.raw.execute("BEGIN")
    db.raw.executemany(
        "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at,"
        " received_at, state) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (key(i), "bob", "out", "alice", i + 1, "text", '{"text": "hi"}', i, i, "sent")
            for i in range(first, first + count)
        ],
    )
    db.raw.execute("COMMIT")


def key(i: int) -> str:
    return f"alice:{i:022d}"


async def steps_of_a_receipt(db: Database, newest: int) -> int:
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    db.raw.set_progress_handler(count, STEPS_PER_CALL)
    try:
        changed = await message_store.apply_receipt(
            db,
            "alice",
            "bob",
            "delivered",
            [key(i)[len("alice:") :] for i in range(newest - 20, newest)],
        )
    finally:
        db.raw.set_progress_handler(None, STEPS_PER_CALL)
    assert len(changed) == 20  # the receipt did its work
    return counted[0] * STEPS_PER_CALL


async def test_a_receipt_costs_the_same_in_a_short_and_a_long_conversation(db: Database) -> None:
    history(db, 0, 100)
    short = await steps_of_a_receipt(db, 100)
    history(db, 100, 20_000)
    long = await steps_of_a_receipt(db, 20_100)
    assert long < 2 * short, (short, long)

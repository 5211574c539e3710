"""What runs for each message or file costs the same in a long conversation as in a short one: a
receipt finds its messages by id (PROTOCOL.md §13.2), the sender's file loop finds an inline
file's offer by id (§11.6), never by a scan of everything ever sent to that peer. Counted in
SQLite's own virtual-machine steps (deterministic, unlike time)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flame.store import files as file_store
from flame.store import messages as message_store
from flame.store.db import Database
from flame.store.files import Transfer

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


async def steps_of(db: Database, work: Callable[[], Awaitable[None]]) -> int:
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    db.raw.set_progress_handler(count, STEPS_PER_CALL)
    try:
        await work()
    finally:
        db.raw.set_progress_handler(None, STEPS_PER_CALL)
    return counted[0] * STEPS_PER_CALL


def receipt(db: Database, newest: int) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        ids = [key(i)[len("alice:") :] for i in range(newest - 20, newest)]
        changed = await message_store.apply_receipt(db, "alice", "bob", "delivered", ids)
        assert len(changed) == 20  # the receipt did its work

    return work


async def test_a_receipt_costs_the_same_in_a_short_and_a_long_conversation(db: Database) -> None:
    history(db, 0, 100)
    short = await steps_of(db, receipt(db, 100))
    history(db, 100, 20_000)
    long = await steps_of(db, receipt(db, 20_100))
    assert long < 2 * short, (short, long)


def inline_sent(db: Database, index: int) -> Callable[[], Awaitable[None]]:
    """An inline file whose offer (message `index`, sent) the peer has: the loop completes it."""

    async def work() -> None:
        transfer_id = f"t{index}"
        transfer = Transfer(
            "bob", "out", transfer_id, key(index), "a.txt", 3, "text/plain", None,
            b"\0" * 32, b"\1" * 32, b"\2" * 32, 65536, transfer_id, "waiting", 0.0, inline=True,
        )  # fmt: skip
        await file_store.insert(db, transfer)
        (done,) = await file_store.complete_inline(db, 1.0)
        assert done.transfer_id == transfer_id and done.state == "complete"

    return work


async def test_an_inline_file_completes_at_the_same_cost_in_a_long_conversation(
    db: Database,
) -> None:
    history(db, 0, 100)
    short = await steps_of(db, inline_sent(db, 99))
    history(db, 100, 20_000)
    long = await steps_of(db, inline_sent(db, 20_099))
    assert long < 2 * short, (short, long)

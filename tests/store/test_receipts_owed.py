"""Delivered receipts owed (PROTOCOL.md §13.2) over a real database: owed in the transaction that
stores the messages, so that a crash keeps both or neither, and settled by the transaction that
queues the receipt paying them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flame.core.envelope import new_message_id
from flame.core.models import Inner, TextBody
from flame.store import messages as message_store
from flame.store import receipts as owed_store
from flame.store.db import DAEMON_SCHEMA, Database, Tx
from flame.store.messages import Incoming
from flame.store.receipts import Owed


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "flame.db", DAEMON_SCHEMA)
    try:
        yield database
    finally:
        await database.close()


def text(seq: int) -> Incoming:
    inner = Inner(
        from_="zoe", to="alice", id=new_message_id(), seq=seq, ts=int(time.time() * 1000),
        kind="text", body=TextBody(text=f"text {seq}"),
    )  # fmt: skip
    return Incoming(inner, time.time())


def owed_for(items: list[Incoming]) -> list[Owed]:
    return [Owed(i.inner.from_, i.inner.id) for i in items]


async def test_receipts_are_owed_with_their_messages_and_settled_in_order(db: Database) -> None:
    first, second = [text(1), text(2)], [text(3)]
    await message_store.store_incoming(db, first, owed_for(first))
    await message_store.store_incoming(db, second, owed_for(second))
    rows = await owed_store.owed(db, 100)
    assert [r.owed for r in rows] == owed_for([*first, *second])  # in the order owed
    assert await owed_store.oldest(db) == rows[0].owed_at
    async with db.transaction() as conn:
        await owed_store.settle(conn, [r.rowid for r in rows[:2]])
    assert [r.owed for r in await owed_store.owed(db, 100)] == owed_for(second)
    assert [r.owed for r in await owed_store.owed(db, 1)] == owed_for(second)


async def test_a_store_that_fails_owes_nothing_and_keeps_nothing(db: Database) -> None:
    items = [text(1)]

    async def fails(conn: Tx, item: Incoming) -> None:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        await message_store.store_incoming(db, items, owed_for(items), fails)
    assert await message_store.count_messages(db) == 0
    assert await owed_store.owed(db, 100) == [] and await owed_store.oldest(db) is None
    await message_store.store_incoming(db, items, owed_for(items))  # the sender's retry
    assert await message_store.count_messages(db) == 1
    assert [r.owed for r in await owed_store.owed(db, 100)] == owed_for(items)

"""Delivered receipts owed (PROTOCOL.md §13.2) over a real database: owed in the transaction that
stores the messages, so that a crash keeps both or neither, and settled by the transaction that
queues the receipt paying them."""

from __future__ import annotations

import pytest

from flame.core.models import TextBody
from flame.store import messages as message_store
from flame.store import receipts as owed_store
from flame.store.db import Database, Tx
from flame.store.messages import Incoming
from flame.store.receipts import Owed
from tests.store.test_deleted_text import incoming


def text(seq: int) -> Incoming:
    return incoming("text", TextBody(text=f"text {seq}"), seq)


def owed_for(items: list[Incoming]) -> list[Owed]:
    return [Owed(i.inner.from_, i.inner.id) for i in items]


async def test_receipts_are_owed_with_their_messages_and_settled_in_order(plain: Database) -> None:
    first, second = [text(1), text(2)], [text(3)]
    await message_store.store_incoming(plain, first, owed_for(first))
    await message_store.store_incoming(plain, second, owed_for(second))
    rows = await owed_store.owed(plain, 100)
    assert [r.owed for r in rows] == owed_for([*first, *second])  # in the order owed
    assert await owed_store.oldest(plain) == rows[0].owed_at
    async with plain.transaction() as conn:
        await owed_store.settle(conn, [r.rowid for r in rows[:2]])
    assert [r.owed for r in await owed_store.owed(plain, 100)] == owed_for(second)
    assert [r.owed for r in await owed_store.owed(plain, 1)] == owed_for(second)


async def test_a_store_that_fails_owes_nothing_and_keeps_nothing(plain: Database) -> None:
    items = [text(1)]

    async def fails(conn: Tx, item: Incoming) -> None:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        await message_store.store_incoming(plain, items, owed_for(items), fails)
    assert await message_store.count_messages(plain) == 0
    assert await owed_store.owed(plain, 100) == [] and await owed_store.oldest(plain) is None
    await message_store.store_incoming(plain, items, owed_for(items))  # the sender's retry
    assert await message_store.count_messages(plain) == 1
    assert [r.owed for r in await owed_store.owed(plain, 100)] == owed_for(items)

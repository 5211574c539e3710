"""The database wrapper: transactions stay whole whatever interrupts them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flame.core.crypto import new_db_key
from flame.store.blocks import blocked_users
from flame.store.db import Database


async def count_blocked(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM blocks")
    assert row is not None
    return int(row[0])


async def test_a_task_cancelled_while_its_begin_runs_leaves_no_open_transaction(
    db: Database,
) -> None:
    """Found when a supervisor stopped its loops: the BEGIN was already queued on the database
    thread, ran anyway, and every later transaction failed with "cannot start a transaction
    within a transaction"."""

    async def write() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO blocks VALUES ('never', 1.0)")

    task = asyncio.create_task(write())
    await asyncio.sleep(0)  # one step: the task has queued its BEGIN and waits for it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not db.conn.in_transaction

    async with db.transaction() as conn:  # the next transaction works, and commits
        await conn.execute("INSERT INTO blocks VALUES ('mallory', 2.0)")
    assert await count_blocked(db) == 1


async def test_a_cancel_inside_a_transaction_rolls_it_back(db: Database) -> None:
    inside = asyncio.Event()

    async def write() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO blocks VALUES ('half', 1.0)")
            inside.set()
            await asyncio.Event().wait()  # cancelled here, mid-transaction

    task = asyncio.create_task(write())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not db.conn.in_transaction
    assert await count_blocked(db) == 0


async def test_an_error_inside_a_transaction_rolls_it_back_and_is_raised(db: Database) -> None:
    with pytest.raises(ZeroDivisionError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO blocks VALUES ('half', 1.0)")
            raise ZeroDivisionError
    assert await count_blocked(db) == 0


async def test_the_old_file_block_list_moves_into_the_one_block_list(tmp_path: Path) -> None:
    """Migration 006: a database from before it keeps every block, in `blocks` only."""
    path, key = tmp_path / "flame.db", new_db_key()
    old = await Database.open(path, "flame.store.schema", key=key)
    async with old.transaction() as conn:  # back to version 5: the two lists of that time
        await conn.execute(
            "CREATE TABLE blocked_users (username TEXT PRIMARY KEY, blocked_at REAL NOT NULL)"
        )
        await conn.execute("INSERT INTO blocked_users VALUES ('mallory', 1.0), ('both', 2.0)")
        await conn.execute("INSERT INTO blocks VALUES ('both', 3.0), ('eve', 4.0)")
        # ... and without what 007 changed.
        await conn.execute("CREATE TABLE keystore (id INTEGER PRIMARY KEY)")
        await conn.execute("ALTER TABLE transfers DROP COLUMN at_rest")
        await conn.execute("PRAGMA user_version=5")
    await old.close()
    db = await Database.open(path, "flame.store.schema", key=key)
    try:
        assert await blocked_users(db) == {"both": 3.0, "eve": 4.0, "mallory": 1.0}
        tables = await db.fetchall("SELECT name FROM sqlite_master WHERE name='blocked_users'")
        assert tables == []
    finally:
        await db.close()

"""The database wrapper: transactions stay whole whatever interrupts them."""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from pathlib import Path

import pytest

from flame.core.crypto import new_db_key
from flame.store.blocks import blocked_users
from flame.store.db import WAL_CHECKPOINT_PAGES, Database, connect


async def count_blocked(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM blocks")
    assert row is not None
    return int(row[0])


async def test_a_task_cancelled_while_its_commit_runs_commits_whole_and_the_next_one_waits(
    db: Database,
) -> None:
    """A durable COMMIT runs on the database thread (store/db.py). Cancelled while it runs, the
    transaction still commits, whole, and the next user of the connection waits for it: found
    when a supervisor stopped its loops, a statement already sent to the thread ran anyway, and
    the next transaction failed with "cannot start a transaction within a transaction"."""

    async def write() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO blocks VALUES ('sent', 1.0)")
            await conn.execute("INSERT INTO blocks VALUES ('also sent', 1.0)")

    task = asyncio.create_task(write())
    await asyncio.sleep(0)  # one step: its statements ran, its COMMIT is on the thread
    assert db.pending is not None and not db.pending.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with db.transaction() as conn:  # waits for that COMMIT, then works and commits
        await conn.execute("INSERT INTO blocks VALUES ('mallory', 2.0)")
    assert not db.conn.in_transaction
    assert sorted(await blocked_users(db)) == ["also sent", "mallory", "sent"]


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


async def test_a_commit_on_the_loops_thread_never_checkpoints_the_next_durable_one_does(
    tmp_path: Path,
) -> None:
    """A non-durable commit runs on the loop's thread (store/db.py): SQLite's automatic
    checkpoint (copying the WAL into the database, with an fsync) would block every request
    there for milliseconds, so it waits for the next durable commit, on the thread. Only a
    checkpoint writes the database file itself (WAL mode): its size tells."""
    path = tmp_path / "flame.db"
    db = await Database.open(path, "flame.store.schema", key=new_db_key())
    try:
        await db.truncate_wal()
        before = path.stat().st_size
        page_of_text = "x" * 3000
        for batch in range(30):  # about 1,500 pages, past WAL_CHECKPOINT_PAGES
            async with db.transaction(durable=False) as conn:
                await conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [(f"k{batch}-{i}", page_of_text) for i in range(50)],
                )
        assert WAL_CHECKPOINT_PAGES < 1500
        assert path.stat().st_size == before  # all of it still in the WAL only
        assert await count_blocked(db) == 0
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO blocks VALUES ('durable', 1.0)")
        assert path.stat().st_size > before + 1000 * 4096  # checkpointed, on the thread
        (value,) = await db.fetchone("PRAGMA wal_autocheckpoint") or (0,)
        assert value == WAL_CHECKPOINT_PAGES  # the connection's own setting is back
    finally:
        await db.close()


async def test_an_error_inside_a_transaction_rolls_it_back_and_is_raised(db: Database) -> None:
    with pytest.raises(ZeroDivisionError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO blocks VALUES ('half', 1.0)")
            raise ZeroDivisionError
    assert await count_blocked(db) == 0


def database_at(path: Path, key: bytes, version: int, *statements: str) -> None:
    """A daemon database (under `key`) as migrations 1..`version` left it, with `statements` run
    on it: what a daemon of that time wrote."""
    scripts = sorted(
        (
            entry
            for entry in resources.files("flame.store.schema").iterdir()
            if entry.name.endswith(".sql") and int(entry.name.split("_", 1)[0]) <= version
        ),
        key=lambda entry: entry.name,
    )
    with contextlib.closing(connect(path, key)) as conn:
        for entry in scripts:
            conn.executescript(entry.read_text(encoding="utf-8"))
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={version}")
        conn.commit()


async def test_the_old_file_block_list_moves_into_the_one_block_list(tmp_path: Path) -> None:
    """Migration 006: a database from before it keeps every block, in `blocks` only."""
    path, key = tmp_path / "flame.db", new_db_key()
    database_at(  # version 5: the two lists of that time
        path,
        key,
        5,
        "INSERT INTO blocked_users VALUES ('mallory', 1.0), ('both', 2.0)",
        "INSERT INTO blocks VALUES ('both', 3.0), ('eve', 4.0)",
    )
    db = await Database.open(path, "flame.store.schema", key=key)
    try:
        assert await blocked_users(db) == {"both": 3.0, "eve": 4.0, "mallory": 1.0}
        tables = await db.fetchall("SELECT name FROM sqlite_master WHERE name='blocked_users'")
        assert tables == []
    finally:
        await db.close()


async def test_relay_rows_keep_no_depositor_name_nor_deposit_time(tmp_path: Path) -> None:
    """Migration 009 (PROTOCOL.md §13.3): rows held before it keep their recipient, envelope, size,
    expiry and order, and lose the depositor's name and the deposit time."""
    path, key = tmp_path / "flame.db", new_db_key()
    database_at(
        path,
        key,
        8,
        "INSERT INTO relay_deposits (recipient, envelope_id, depositor, envelope, size,"
        " deposited_at, expires_at) VALUES ('bob', 'second', 'alice', '{}', 2, 20.0, 900.0),"
        " ('bob', 'first', 'carol', '{}', 2, 10.0, 800.0)",
    )
    db = await Database.open(path, "flame.store.schema", key=key)
    try:
        columns = {row["name"] for row in await db.fetchall("PRAGMA table_info(relay_deposits)")}
        assert columns == {
            "recipient",
            "envelope_id",
            "depositor_tag",
            "envelope",
            "size",
            "expires_at",
        }
        rows = await db.fetchall("SELECT * FROM relay_deposits ORDER BY rowid")
        assert [(r["envelope_id"], r["depositor_tag"], r["expires_at"]) for r in rows] == [
            ("first", None, 800.0),
            ("second", None, 900.0),
        ]
    finally:
        await db.close()

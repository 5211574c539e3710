"""The ratchet messages opened (PROTOCOL.md §14.6), as stored: appended to `ratchet_inbox` and
found through the daemon's index in memory (store/sessions.OpenedIndex). A stage writes a few
pages at the table's end however many messages were opened before; an index entry that points
at another message's row is never taken for it; a database of the release before keeps every
opened message and every queued inner message through migration 018."""

from __future__ import annotations

import os
from pathlib import Path

from flame.core.crypto import new_db_key
from flame.core.encoding import b64e
from flame.core.models import Inner, TextBody
from flame.store import outbox as outbox_store
from flame.store import sessions as store
from flame.store.db import Database
from flame.store.sessions import Staged
from tests.store.test_db import database_at

PAGE_BYTES = 4096  # SQLCipher's page, as the daemon's database uses it
WAL_HEADER, FRAME_HEADER = 32, 24


def inner_json(envelope_id: str) -> str:
    inner = Inner(
        from_="alice", to="bob", id=envelope_id, seq=1, ts=1, kind="text",
        body=TextBody(text="a message of an ordinary length, some forty characters or so"),
    )  # fmt: skip
    return inner.model_dump_json(by_alias=True)


def opened(count: int, at: float) -> list[Staged]:
    ids = [b64e(os.urandom(16)) for _ in range(count)]
    return [Staged("alice", envelope_id, inner_json(envelope_id), at) for envelope_id in ids]


async def wal_frames_of_a_stage(db: Database, path: Path, batch: list[Staged]) -> int:
    """Pages the stage of `batch` wrote: the frames it added to an emptied write-ahead log."""
    await db.truncate_wal()
    await store.stage(db, batch, [], None)
    return (os.path.getsize(f"{path}-wal") - WAL_HEADER) // (PAGE_BYTES + FRAME_HEADER)


async def test_a_stage_writes_a_few_pages_however_many_were_opened_before(
    tmp_path: Path,
) -> None:
    """With a unique index on (author, random envelope id), 20 messages took about a page each
    anywhere in that index once thousands were held; appended, they take the table's last few."""
    path = tmp_path / "flame.db"
    db = await Database.open(path, "flame.store.schema", key=new_db_key())
    try:
        first = await wal_frames_of_a_stage(db, path, opened(20, 1.0))
        for round_ in range(20):  # 4,000 opened before
            await store.stage(db, opened(200, 2.0 + round_), [], None)
        later = await wal_frames_of_a_stage(db, path, opened(20, 100.0))
        assert later <= first + 2  # the table's end and the age index, not a page per message
        assert later <= 12
    finally:
        await db.close()


async def test_what_was_opened_is_known_again_after_a_restart(tmp_path: Path) -> None:
    path, key = tmp_path / "flame.db", new_db_key()
    db = await Database.open(path, "flame.store.schema", key=key)
    batch = opened(3, 5.0)
    try:
        await store.stage(db, batch, [], None)
    finally:
        await db.close()
    db = await Database.open(path, "flame.store.schema", key=key)  # a new process: the table only
    try:
        ids = [s.envelope_id for s in batch]
        got = await store.staged(db, "alice", [*ids, "never-opened"])
        assert set(got) == set(ids)
        assert all((inner := got[i]) is not None and inner.id == i for i in ids)
        assert await store.staged(db, "carol", ids) == {}  # another author's ids are not these
        await store.stage(db, opened(1, 6.0), [], None)  # the next row goes after the loaded ones
        (count,) = await db.fetchone("SELECT count(DISTINCT id) FROM ratchet_inbox") or (0,)
        assert count == 4
    finally:
        await db.close()


def test_the_index_holds_every_row_of_a_shared_hash() -> None:
    index = store.OpenedIndex()
    index.load([(1, "carol", "x")])
    index.add("alice", "y", 1)  # a hash that led to carol's row: both are held
    assert index.candidates("alice", ["y"]) == [1] and index.candidates("carol", ["x"]) == [1]
    index.add("carol", "x", 7)  # the same key twice (as two keys of one hash would be)
    assert sorted(index.candidates("carol", ["x"])) == [1, 7]
    index.drop("carol", "x", 1)
    assert index.candidates("carol", ["x"]) == [7]
    index.drop("carol", "x", 7)
    assert index.candidates("carol", ["x"]) == []


async def test_an_index_entry_that_points_at_another_row_is_not_taken_for_it(
    db: Database,
) -> None:
    """Two keys of one hash share an entry: the row read is checked against its key."""
    (one,) = opened(1, 5.0)
    await store.stage(db, [one], [], None)
    index = await store.opened_index(db)
    (rowid,) = index.candidates("alice", [one.envelope_id])
    index.add("alice", "collides", rowid)  # as if ("alice", "collides") had the same hash
    assert await store.staged(db, "alice", ["collides"]) == {}
    assert set(await store.staged(db, "alice", ["collides", one.envelope_id])) == {one.envelope_id}


async def test_erasing_and_pruning_keep_the_index_and_the_table_together(db: Database) -> None:
    old, new = opened(2, 10.0), opened(2, 50.0)
    await store.stage(db, old, [], None)
    await store.stage(db, new, [], None)
    async with db.transaction() as conn:
        await store.erase_opened(conn, [f"alice:{new[0].envelope_id}"])
    got = await store.staged(db, "alice", [s.envelope_id for s in new])
    assert got == {new[0].envelope_id: None, new[1].envelope_id: got[new[1].envelope_id]}
    assert got[new[1].envelope_id] is not None  # only the erased one lost its text
    await store.prune_staged(db, 20.0)
    assert await store.staged(db, "alice", [s.envelope_id for s in old]) == {}
    assert set(await store.staged(db, "alice", [s.envelope_id for s in new])) == {
        s.envelope_id for s in new
    }
    (count,) = await db.fetchone("SELECT count(*) FROM ratchet_inbox") or (0,)
    assert count == 2


async def test_migration_18_keeps_what_was_opened_and_what_is_queued(tmp_path: Path) -> None:
    path, key = tmp_path / "flame.db", new_db_key()
    database_at(
        path,
        key,
        17,
        "INSERT INTO ratchet_inbox (author, envelope_id, inner, received_at) VALUES"
        f" ('alice', 'later', '{inner_json('later')}', 20.0),"
        f" ('alice', 'earlier', '{inner_json('earlier')}', 10.0),"
        " ('alice', 'erased', '', 15.0)",
        "INSERT INTO outbox (message_id, kind, peer, envelope, next_attempt_at, created_at,"
        " expires_at) VALUES ('alice:m2', 'text', 'bob', '{}', 0, 1, 99),"
        " ('alice:m1', 'text', 'bob', '{}', 0, 1, 99), ('receipt:x', 'receipt', 'bob', '{}', 0, 1,"
        " 99)",
        "INSERT INTO ratchet_outbox (message_id, inner) VALUES ('alice:m2', 'second'),"
        " ('alice:m1', 'first')",
    )
    db = await Database.open(path, "flame.store.schema", key=key)
    try:
        got = await store.staged(db, "alice", ["earlier", "later", "erased", "other"])
        assert set(got) == {"earlier", "later", "erased"} and got["erased"] is None
        rows = await db.fetchall("SELECT envelope_id FROM ratchet_inbox ORDER BY id")
        assert [row[0] for row in rows] == ["earlier", "erased", "later"]  # in the order opened
        assert await outbox_store.outgoing_v2(db, "bob") == [
            ("alice:m2", "text", "second"),
            ("alice:m1", "text", "first"),
        ]
        tables = await db.fetchall("SELECT name FROM sqlite_master WHERE name LIKE 'ratchet_out%'")
        assert tables == []
    finally:
        await db.close()

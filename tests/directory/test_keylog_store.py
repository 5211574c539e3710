"""The key log's entries in the directory's store, the same tests on both back ends (SQLite,
PostgreSQL; PROTOCOL.md §18.2): one entry per enrolment and rekey, written in the enrolment's own
transaction by the back end's triggers, none for a refused enrolment, never changed or removed;
on PostgreSQL, enrolments through two processes at once still take positions 0, 1, 2, ...
without a gap or a repeat (the appends are serialised)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlcipher3

from flame.core.encoding import b64e
from flame.core.keylog import PAGE_MAX
from flame.devtools.postgres import Postgres
from flame.directory.pg_store import PostgresStore
from flame.directory.sqlite_store import SqliteStore
from flame.directory.store import DirectoryStore
from flame.errors import Forbidden
from tests.directory.conftest import new_database
from tests.directory.helpers import NOW, enroll


async def raw(store: DirectoryStore, sql: str) -> None:
    """`sql` straight at the back end's database, past the store's methods."""
    if isinstance(store, SqliteStore):
        await store.db.execute(sql)
    else:
        assert isinstance(store, PostgresStore)
        async with store.pool.acquire() as conn:
            await conn.execute(sql)


async def test_each_enrolment_and_rekey_is_one_entry_and_a_refused_one_none(
    directory_store: DirectoryStore,
) -> None:
    alice = await enroll(directory_store, "alice", now=NOW)
    bob = await enroll(directory_store, "bob", now=NOW + 1)
    code = await directory_store.create_invite("alice", rekey=True, now=NOW + 2, ttl_s=60)
    new_alice = await enroll(directory_store, "alice", code, now=NOW + 2)
    other = await directory_store.create_invite("bob", rekey=True, now=NOW + 3, ttl_s=60)
    with pytest.raises(Forbidden):
        await enroll(directory_store, "alice", other, now=NOW + 3)  # bob's invite: refused

    logged = await directory_store.keylog_entries(0, PAGE_MAX)
    assert [(e.username, e.kind, e.ts) for e in logged] == [
        ("alice", "enroll", NOW), ("bob", "enroll", NOW + 1), ("alice", "rekey", NOW + 2),
    ]  # fmt: skip
    assert [e.identity_key for e in logged] == [
        alice.identity_key, bob.identity_key, new_alice.identity_key,
    ]  # fmt: skip
    assert logged[2].x25519_key == new_alice.x25519_key
    assert logged[2].x25519_sig == new_alice.x25519_sig
    assert await directory_store.keylog_entries(1, 1) == logged[1:2]
    assert await directory_store.keylog_entries(3, PAGE_MAX) == []
    keys = await directory_store.keylog_identity_keys("alice")
    assert [b64e(k) for k in keys] == [new_alice.identity_key, alice.identity_key]  # newest first
    assert await directory_store.keylog_identity_keys("nobody") == []


async def test_the_log_is_append_only(directory_store: DirectoryStore) -> None:
    await enroll(directory_store, "alice")
    refused = (sqlcipher3.IntegrityError, asyncpg.RaiseError)
    for sql in ("UPDATE keylog SET username='mallory'", "DELETE FROM keylog"):
        with pytest.raises(refused, match="append-only"):
            await raw(directory_store, sql)
    if isinstance(directory_store, PostgresStore):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await raw(directory_store, "TRUNCATE keylog")
    logged = await directory_store.keylog_entries(0, PAGE_MAX)
    assert [(e.username, e.kind) for e in logged] == [("alice", "enroll")]


async def test_two_processes_enrolling_at_once_take_every_position_once(
    postgres_server: Postgres,
) -> None:
    dsn = await new_database(postgres_server)
    first, second = await PostgresStore.open(dsn), await PostgresStore.open(dsn)
    try:
        names = [f"user{i:02d}" for i in range(24)]
        await asyncio.gather(
            *(enroll(first if i % 2 else second, name) for i, name in enumerate(names))
        )
        rekeys = [await first.create_invite(n, rekey=True, now=NOW, ttl_s=60) for n in names[:8]]
        await asyncio.gather(
            *(enroll(second if i % 2 else first, n, c) for i, (n, c) in enumerate(
                zip(names[:8], rekeys, strict=True)
            ))
        )  # fmt: skip
        logged = await second.keylog_entries(0, PAGE_MAX)
        assert len(logged) == 32
        assert sorted(e.username for e in logged if e.kind == "enroll") == names
        assert sorted(e.username for e in logged if e.kind == "rekey") == names[:8]
        async with first.pool.acquire() as conn:
            positions = [r["position"] for r in await conn.fetch("SELECT position FROM keylog")]
        assert sorted(positions) == list(range(32))
        for name in names[:8]:  # each rekey after its enrolment, as the tree must have them
            kinds = [e.kind for e in logged if e.username == name]
            assert kinds == ["enroll", "rekey"]
    finally:
        await first.close()
        await second.close()

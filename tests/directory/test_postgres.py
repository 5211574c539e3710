"""Two directory processes' stores on one PostgreSQL database: what one writes the other sees and
is told of (LISTEN/NOTIFY), changes commit in cursor order under concurrent writers, and an
outage is a 503 with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from flame.core.models import DirectoryEntry, Status
from flame.devtools.postgres import Postgres
from flame.directory.pg_store import PostgresStore
from flame.errors import Forbidden, Unavailable
from tests.directory.conftest import new_database
from tests.directory.helpers import NOW, by_name, enroll, presence


@pytest.fixture
async def two_stores(postgres_server: Postgres) -> AsyncIterator[tuple[PostgresStore, ...]]:
    dsn = await new_database(postgres_server)
    first = await PostgresStore.open(dsn)
    second = await PostgresStore.open(dsn)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_change_on_one_is_seen_and_notified_on_the_other(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_stores
    await second.is_listening.wait()
    heads: asyncio.Queue[int] = asyncio.Queue()
    second.listeners.append(heads.put_nowait)
    await enroll(first, "alice")
    head = await first.head()
    while (await asyncio.wait_for(heads.get(), 5)) < head:
        pass
    assert (await second.entry("alice")) is not None
    code = await second.create_invite("bob", rekey=False, now=NOW, ttl_s=60)
    await enroll(first, "bob", code)
    with pytest.raises(Forbidden) as spent:
        await enroll(second, "bob", code)
    assert spent.value.code in ("invite_used", "username_taken")


async def test_concurrent_writers_on_two_processes_never_hide_a_change_from_a_reader(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    """Changes commit in the order of their numbers, so a reader syncing by cursor while two
    processes write at once misses nothing."""
    first, second = two_stores
    names = [f"user{i}" for i in range(8)]
    for name in names:
        await enroll(first, name)
    held: dict[str, DirectoryEntry] = {}
    cursor = 0
    done = asyncio.Event()

    async def write(store: PostgresStore, offset: int) -> None:
        for round_ in range(15):
            for i, name in enumerate(names):
                status: Status = "away" if (round_ + i + offset) % 2 else "online"
                await store.put_presence(presence(name, status, ts=NOW + round_), NOW + 600)

    async def read() -> None:
        nonlocal cursor
        while not done.is_set():
            delta = await second.changes(cursor)
            held.update(by_name(delta.entries))
            cursor = delta.cursor
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    await asyncio.gather(write(first, 0), write(second, 1))
    done.set()
    await reader
    delta = await second.changes(cursor)
    held.update(by_name(delta.entries))
    assert held == by_name((await first.listing()).entries)


async def test_a_database_outage_is_503_with_a_reason_and_passes(
    postgres_server: Postgres,
) -> None:
    dsn = await new_database(postgres_server)
    store = await PostgresStore.open(dsn)
    try:
        await enroll(store, "alice")
        postgres_server.halt()
        try:
            with pytest.raises(Unavailable) as down:
                await store.entry("alice")
            assert down.value.status == 503 and down.value.code == "database_unavailable"
            assert down.value.retry_after_header() is not None
        finally:
            postgres_server.start()
        entry = await store.entry("alice")  # the pool reconnects by itself
        assert entry is not None
    finally:
        await store.close()

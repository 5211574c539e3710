"""The directory's two back ends, for tests that must pass on both: `directory_store` is the
SQLite file in a temporary folder, then a fresh database on the throwaway PostgreSQL server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from flame.devtools.postgres import Postgres
from flame.directory.pg_store import PostgresStore
from flame.directory.sqlite_store import SqliteStore
from flame.directory.store import DirectoryStore


async def new_database(server: Postgres) -> str:
    """The URL of a new, empty database on `server`."""
    name = "t" + secrets.token_hex(6)
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.dsn(name)


@pytest.fixture(params=["sqlite", "postgres"])
async def directory_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DirectoryStore]:
    store: DirectoryStore
    if request.param == "sqlite":
        store = await SqliteStore.open(tmp_path_factory.mktemp("directory"))
    else:
        server: Postgres = request.getfixturevalue("postgres_server")
        store = await PostgresStore.open(await new_database(server))
    try:
        yield store
    finally:
        await store.close()

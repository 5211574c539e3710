"""PostgreSQL's part of the directory's start and of its pushes (directory/pg_store.py): the
migrations, one process at a time; and the connection that LISTENs for the heads other processes
NOTIFY (PROTOCOL.md §5.5), which comes back by itself when the database does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from flame.store.db import numbered_scripts

log = logging.getLogger("flame.directory")
SCHEMA = "flame.directory.schema_pg"
CHANNEL = "flame_directory"
TIMEOUT_S = 5.0
MIGRATION_LOCK = 0x666C616D65  # pg_advisory_xact_lock key: one process migrates at a time
# What an outage looks like to asyncpg: the server gone, shutting down, or not answering in time.
OUTAGE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


async def migrate(conn: asyncpg.Connection) -> None:
    """The numbered scripts of schema_pg/ not yet applied, inside the caller's transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    version = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
    for number, sql in numbered_scripts(SCHEMA):
        if number > version:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_version VALUES ($1)", number)


async def listen(dsn: str, changed: Callable[[int], None], is_listening: asyncio.Event) -> None:
    """LISTEN on CHANNEL, calling `changed` with each head; when the connection drops, connect
    again (with backoff) and report the head then, so changes made meanwhile are pushed too."""
    delay = 0.2

    def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            changed(int(payload))

    while True:
        gone = asyncio.Event()
        try:
            conn = await asyncpg.connect(dsn, timeout=TIMEOUT_S)
        except (*OUTAGE, asyncpg.PostgresError) as exc:
            log.warning("directory database: cannot LISTEN (%s); retrying", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        try:
            conn.add_termination_listener(lambda _conn, gone=gone: gone.set())
            await conn.add_listener(CHANNEL, notified)
            changed(int(await conn.fetchval("SELECT seq FROM change_head")))
            is_listening.set()
            delay = 0.2
            await gone.wait()
        except OUTAGE:
            pass
        finally:
            is_listening.clear()
            with contextlib.suppress(*OUTAGE):
                await asyncio.wait_for(conn.close(), TIMEOUT_S)
        await asyncio.sleep(delay)

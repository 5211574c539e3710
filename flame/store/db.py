"""Open a SQLite database (WAL, synchronous=FULL), migrate it, and run transactions on it.

One connection per database per process. Coroutines share it, so a transaction holds a lock:
statements of two transactions never interleave on the connection.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from flame.errors import FlameError


class Database:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, schema_package: str) -> Database:
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        db = cls(conn)
        await db.migrate(schema_package)
        return db

    async def migrate(self, schema_package: str) -> None:
        (version,) = await self.fetchone("PRAGMA user_version") or (0,)
        scripts = sorted(
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in resources.files(schema_package).iterdir()
            if entry.name.endswith(".sql")
        )
        for number, (_name, sql) in enumerate(scripts, start=1):
            if number <= version:
                continue
            async with self.lock:
                await self.conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;"
                )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        """One hop to the database thread, under the lock: a read never interleaves with another
        coroutine's statements on the shared connection, nor sees its uncommitted writes."""
        async with self.lock:
            return list(await self.conn.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        async with self.lock:
            await self.conn.execute(sql, params)

    async def close(self) -> None:
        await self.conn.close()


class FolderLock:
    """An exclusive lock on a data folder, so a second process cannot open the same database."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "flame.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise FlameError(
                f"Another Flame process is using the data folder {self.path.parent}; "
                "stop it first or choose another --data-dir."
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

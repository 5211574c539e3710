"""Open a SQLite database (WAL, synchronous=FULL), migrate it, and run transactions on it.

One connection per database per process. Coroutines share it, so a transaction holds a lock:
statements of two transactions never interleave on the connection.

The driver is SQLCipher's (`sqlcipher3`, SQLCipher 4 on SQLite 3.5x with FTS5) under aiosqlite, for
both databases: the daemon's is encrypted with the 32-byte key from its keystore (a raw key, so no
second key derivation; docs/ARCHITECTURE.md, "At rest"); the directory's, opened without a key, is
a plain SQLite file. A closed database refuses every statement with LockedError.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import sqlcipher3

from flame.errors import FlameError, LockedError
from flame.store.folder import create_private, make_private_folder

# The driver's error for a statement that cannot run (not sqlite3's: another module's classes).
OperationalError: type[Exception] = sqlcipher3.OperationalError
KEY_BYTES = 32

T = TypeVar("T")


def in_marks(values: Sequence[Any]) -> str:
    """The placeholders of an SQL IN list of `values`: "?,?,?"."""
    return ",".join("?" * len(values))


def from_row(cls: type[T], row: aiosqlite.Row, **overrides: Any) -> T:
    """A dataclass from a row whose columns carry its field names; `overrides` replace the
    columns that need decoding (JSON, booleans)."""
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = {name: row[name] for name in names if name not in overrides}
    return cls(**values, **overrides)


def key_pragma(key: bytes) -> str:
    """SQLCipher's raw-key form: the 32 bytes are the AES key itself, no PBKDF2 over them."""
    if len(key) != KEY_BYTES:
        raise ValueError("a database key is 32 bytes")
    return f"x'{key.hex()}'"


def connect(path: Path, key: bytes | None) -> sqlite3.Connection:
    """A connection of the driver (runs on aiosqlite's thread); keyed first when `key` is given.

    Raises FlameError when the key does not open the file (or it is no database at all)."""
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")  # errors are ours to report, not stderr's
        if key is not None:
            conn.execute(f'PRAGMA key = "{key_pragma(key)}"')
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        raise FlameError(
            f"The database {path} does not open with this account's key (damaged, or not Flame's)."
        ) from exc
    conn.row_factory = sqlcipher3.Row
    return conn  # type: ignore[no-any-return]


def numbered_scripts(schema_package: str) -> list[tuple[int, str]]:
    """The migrations of a schema package, in order. A script's number is its file name's
    (001_init.sql is 1): numbers may be reserved for work in progress elsewhere, so a gap is
    allowed and never renumbers a script."""
    scripts = [
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in resources.files(schema_package).iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(scripts)


class Database:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()
        self.closed = False

    @classmethod
    async def open(cls, path: Path, schema_package: str, *, key: bytes | None = None) -> Database:
        """Open (creating it if needed), key and migrate the database at `path`."""
        conn = await aiosqlite.Connection(lambda: connect(path, key), iter_chunk_size=64)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        # What is deleted is overwritten, not only unlinked: a deleted message's text leaves the
        # file's pages (PROTOCOL.md §17.3), as FTS5's secure-delete takes it out of the index.
        await conn.execute("PRAGMA secure_delete=ON")
        db = cls(conn)
        await db.migrate(schema_package)
        return db

    async def migrate(self, schema_package: str) -> None:
        (version,) = await self.fetchone("PRAGMA user_version") or (0,)
        for number, sql in numbered_scripts(schema_package):
            if number <= version:
                continue
            async with self.lock:
                self._check_open()
                await self.conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;"
                )

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE .. COMMIT under the lock; ROLLBACK on any exception, cancellation too.

        `durable=False` commits without its own fsync (synchronous=NORMAL for this one commit):
        still atomic, and made durable by the next durable commit, which syncs the WAL that holds
        it. Only for what nobody was told about yet (PROTOCOL.md §14.6: the ratchet messages
        opened, whose 2xx waits for the receivers' durable commit).

        A statement awaited here is already queued on the connection's thread when a cancel can
        arrive, so it runs regardless: a cancelled BEGIN still opens a transaction, which must be
        rolled back before the lock goes, or the next BEGIN fails ("cannot start a transaction
        within a transaction") and the database is stuck. The ROLLBACK is queued the same way, so
        a second cancel cannot stop it either.
        """
        async with self.lock:
            self._check_open()
            try:
                if not durable:
                    await self.conn.execute("PRAGMA synchronous=NORMAL")
                try:
                    await self.conn.execute("BEGIN IMMEDIATE")
                except asyncio.CancelledError:
                    await self._rollback()
                    raise
                try:
                    yield self.conn
                except BaseException:
                    await self._rollback()
                    raise
                await self.conn.execute("COMMIT")
            finally:
                if not durable:  # queued at once, so it runs before the lock goes (see above)
                    await self.conn.execute("PRAGMA synchronous=FULL")

    async def _rollback(self) -> None:
        """End the open transaction, if there is one (SQLite may have ended it already)."""
        with contextlib.suppress(sqlcipher3.OperationalError):
            await self.conn.execute("ROLLBACK")

    # A read runs start to finish in ONE call on the connection's thread: split into execute and
    # fetch, another coroutine's write could run between the two on this same connection, and
    # SQLite leaves a statement that sees its table change under it undefined (an aggregate over
    # the outbox came back NULL that way). One call is also one thread hop instead of two.

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        """One hop to the database thread, under the lock: a read never interleaves with another
        coroutine's statements on the shared connection, nor sees its uncommitted writes."""
        async with self.lock:
            self._check_open()
            return list(await self.conn.execute_fetchall(sql, params))

    async def fetch_in(self, sql: str, values: Sequence[Any]) -> list[aiosqlite.Row]:
        """`sql` with one "IN ({})" filled for `values`; none at all for no values."""
        if not values:
            return []
        return await self.fetchall(sql.format(in_marks(values)), tuple(values))

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        async with self.lock:
            self._check_open()
            await self.conn.execute(sql, params)

    async def truncate_wal(self) -> None:
        """Copy the write-ahead log into the database and cut it to nothing, so that the old
        pages it held (a deleted text among them) are no longer in any file (§17.3)."""
        async with self.lock:
            self._check_open()
            await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _check_open(self) -> None:
        if self.closed:
            raise LockedError("This daemon is locked; its user has not logged in.")

    async def close(self) -> None:
        """After the statement or transaction under way: from then on, every use is refused
        (LockedError), so a request still running when the daemon locks gets a 503, not a crash."""
        async with self.lock:
            if self.closed:
                return
            self.closed = True
            await self.conn.close()


DAEMON_SCHEMA = "flame.store.schema"
DAEMON_DB = "flame.db"


async def open_daemon_db(data_dir: Path, key: bytes) -> Database:
    """The daemon's encrypted database in its data folder (0700), 0600 from its creation, migrated.
    A plaintext database of an older version must have been encrypted first (store/cipher.py)."""
    make_private_folder(data_dir)
    path = data_dir / DAEMON_DB
    create_private(path)
    return await Database.open(path, DAEMON_SCHEMA, key=key)


class FolderLock:
    """An exclusive lock on a data folder, so a second process cannot open the same database."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "flame.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        make_private_folder(self.path.parent)
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

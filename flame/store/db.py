"""Open a SQLite database (WAL, synchronous=FULL), migrate it, and run transactions on it.

One connection per database per process. Coroutines share it, so a transaction holds a lock:
statements of two transactions never interleave on the connection.

Where statements run: a statement that waits for the disk (a durable COMMIT's fsync, a statement
outside any transaction, which commits on its own, a migration, a read marked `slow`) runs on
aiosqlite's thread, so the event loop goes on meanwhile. Every other statement (those inside a
transaction, and reads) runs at once on the loop's own thread: it touches only pages in memory
and takes microseconds, where a hop to the thread and back costs about 50 µs of CPU
(docs/ARCHITECTURE.md, "The database"). The lock keeps the two threads from ever using the
connection at the same time: a statement sent to the thread is waited for, to the end, before
the lock serves anyone else, even when its waiter was cancelled.

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
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
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
    # Used from the loop's thread too, never at the same time as from aiosqlite's (the lock).
    conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
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


Row = aiosqlite.Row
# A durable commit that leaves the WAL at this many pages or more checkpoints it (SQLite's own
# default, written down because non-durable commits turn it off for themselves).
WAL_CHECKPOINT_PAGES = 1000


class Cursor:
    """What a statement run on the loop's thread gives: awaited (`await tx.execute(...)`) or used
    as `async with tx.execute(...) as cursor`, as aiosqlite's cursor is, with its rows at once."""

    __slots__ = ("raw",)

    def __init__(self, raw: sqlite3.Cursor) -> None:
        self.raw = raw

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self
        yield  # a generator that never suspends: nothing to wait for

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.raw.close()

    async def close(self) -> None:
        self.raw.close()

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self.raw.lastrowid

    async def fetchall(self) -> list[Row]:
        return self.raw.fetchall()

    async def fetchone(self) -> Row | None:
        return self.raw.fetchone()  # type: ignore[no-any-return]


class Tx:
    """The open transaction: its statements run on the loop's thread, in microseconds (the
    module's docstring). The same calls as aiosqlite's connection, so a store function reads the
    same either way. `db`: the database it is a transaction of."""

    __slots__ = ("db", "raw")

    def __init__(self, raw: sqlite3.Connection, db: Database) -> None:
        self.raw = raw
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return Cursor(self.raw.execute(sql, params))

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Cursor:
        return Cursor(self.raw.executemany(sql, params))

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.raw.execute(sql, params).fetchall()


class Database:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.raw: sqlite3.Connection = conn._conn  # the driver's connection (see the docstring)
        self.lock = asyncio.Lock()
        self.closed = False
        self.pending: asyncio.Future[Any] | None = None  # the statement sent to the thread last

    @classmethod
    async def open(cls, path: Path, schema_package: str, *, key: bytes | None = None) -> Database:
        """Open (creating it if needed), key and migrate the database at `path`."""
        conn = await aiosqlite.Connection(lambda: connect(path, key), iter_chunk_size=64)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
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
            script = f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;"
            async with self.lock:
                await self._settled()
                await self._in_thread(functools.partial(self.raw.executescript, script))

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Tx]:
        """BEGIN IMMEDIATE .. COMMIT under the lock; ROLLBACK on any exception, cancellation too.

        `durable=False` commits without its own fsync (synchronous=NORMAL for this one commit):
        still atomic, and made durable by the next durable commit, which syncs the WAL that holds
        it. Only for what nobody was told about yet (PROTOCOL.md §14.6: the ratchet messages
        opened, whose 2xx waits for the receivers' durable commit). Such a commit writes no more
        than pages to the WAL, so it runs on the loop's thread like the statements: it never runs
        the WAL's automatic checkpoint (an fsync of the database, milliseconds), which waits for
        the next durable commit, on aiosqlite's thread.

        A durable COMMIT runs on aiosqlite's thread; cancelled while it runs, it still completes
        (committed), and the lock waits for it (`_settled`). A COMMIT that fails is rolled back.
        """
        async with self.lock:
            await self._settled()
            raw = self.raw
            if not durable:
                raw.execute("PRAGMA synchronous=NORMAL")
                raw.execute("PRAGMA wal_autocheckpoint=0")
            try:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(raw, self)
                except BaseException:
                    self._rollback()
                    raise
                try:
                    if durable:
                        await self._in_thread(functools.partial(self._run, "COMMIT"))
                    else:
                        raw.execute("COMMIT")
                except asyncio.CancelledError:
                    raise  # committed all the same, on the thread (above)
                except BaseException:
                    self._rollback()
                    raise
            finally:
                if not durable:
                    raw.execute("PRAGMA synchronous=FULL")
                    raw.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")

    def _rollback(self) -> None:
        """End the open transaction, if there is one (SQLite may have ended it already)."""
        with contextlib.suppress(sqlcipher3.OperationalError):
            self.raw.execute("ROLLBACK")

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement to its end: its rows all read, so it holds nothing open (a statement
        left part-read keeps the next COMMIT from committing)."""
        return self.raw.execute(sql, params).fetchall()

    async def _in_thread(self, work: Callable[[], Any]) -> Any:
        """`work` on aiosqlite's thread. A cancel stops the waiting, never the work: the next user
        of the lock waits for it to end (`_settled`)."""
        future = asyncio.ensure_future(self.conn._execute(work))  # type: ignore[no-untyped-call]
        future.add_done_callback(_retrieve)
        self.pending = future
        return await asyncio.shield(future)

    async def _settled(self) -> None:
        """Under the lock: the database is open, and nothing runs on the thread any more."""
        if self.pending is not None and not self.pending.done():
            await asyncio.wait([self.pending])
        self.pending = None
        if self.closed:
            raise LockedError("This daemon is locked; its user has not logged in.")
        if self.raw.in_transaction:  # a COMMIT that failed after its waiter had gone
            self._rollback()

    # A read runs start to finish under the lock, at once: another coroutine's write can never
    # run between a statement and the fetch of its rows on this shared connection (SQLite leaves
    # a statement that sees its table change under it undefined).

    async def fetchone(
        self, sql: str, params: tuple[Any, ...] = (), *, slow: bool = False
    ) -> Row | None:
        rows = await self.fetchall(sql, params, slow=slow)
        return rows[0] if rows else None

    async def fetchall(
        self, sql: str, params: tuple[Any, ...] = (), *, slow: bool = False
    ) -> list[Row]:
        """Under the lock: a read never interleaves with another coroutine's statements on the
        shared connection, nor sees its uncommitted writes. `slow`: a read that may take
        milliseconds (a search over the whole store) runs on the thread, the loop goes on."""
        async with self.lock:
            await self._settled()
            if slow:
                return await self._in_thread(  # type: ignore[no-any-return]
                    functools.partial(self._run, sql, params)
                )
            return self._run(sql, params)

    async def fetch_in(self, sql: str, values: Sequence[Any]) -> list[Row]:
        """`sql` with one "IN ({})" filled for `values`; none at all for no values."""
        if not values:
            return []
        return await self.fetchall(sql.format(in_marks(values)), tuple(values))

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One statement in a transaction of its own: it commits, so it runs on the thread."""
        async with self.lock:
            await self._settled()
            await self._in_thread(functools.partial(self._run, sql, params))

    async def truncate_wal(self) -> None:
        """Copy the write-ahead log into the database and cut it to nothing, so that the old
        pages it held (a deleted text among them) are no longer in any file (§17.3)."""
        async with self.lock:
            await self._settled()
            await self._in_thread(functools.partial(self._run, "PRAGMA wal_checkpoint(TRUNCATE)"))

    async def close(self) -> None:
        """After the statement or transaction under way: from then on, every use is refused
        (LockedError), so a request still running when the daemon locks gets a 503, not a crash."""
        async with self.lock:
            if self.closed:
                return
            if self.pending is not None and not self.pending.done():
                await asyncio.wait([self.pending])
            self.closed = True
            await self.conn.close()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A result nobody waits for any more (its waiter was cancelled) is still collected, so
    asyncio does not report it as never retrieved; its waiter, if any, got it already."""
    if not future.cancelled():
        future.exception()


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

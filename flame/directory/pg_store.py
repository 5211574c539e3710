"""The directory's PostgreSQL back end (asyncpg), for several `flame directory serve` processes
on one database: the only SQL of that back end; the rules are directory/store.py's.

Across processes: an invite row is locked (FOR UPDATE) while it is spent, so it is spent once;
every change takes the head's row lock last and holds it to its commit, so heads commit in order
(PROTOCOL.md §5.4); and a change NOTIFYs channel `flame_directory` with its head, which every
process LISTENs to for its pushes. The key log's appends (triggers of schema_pg 002) are
serialised by a transaction-level advisory lock (PROTOCOL.md §18.2). A database that does not
answer is a 503 `database_unavailable` with Retry-After, never a 500 or a hang
(`command_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from flame.core.keylog import KeyLogEntry
from flame.core.models import DirectoryEntry, PresenceRecord, UserRecord
from flame.core.prekeys import PrekeyRecord
from flame.core.presence import REPUBLISH_S, is_republish, material
from flame.directory.pg_listen import CHANNEL, OUTAGE, TIMEOUT_S, listen, migrate
from flame.directory.store import (
    ChangeListener,
    Changes,
    InviteRow,
    check_enrollment,
    code_hash,
    entry_of,
    future_cursor,
    keylog_entry,
    new_invite_code,
    taken,
    user_record,
)
from flame.errors import Unavailable

RETRY_AFTER_S = 5.0
ENTRIES = "SELECT u.*, p.record FROM users u LEFT JOIN presence p ON p.username = u.username"
T = TypeVar("T")


def unavailable() -> Unavailable:
    return Unavailable(
        "The directory's database does not answer; try again shortly.",
        code="database_unavailable",
        retry_after_s=RETRY_AFTER_S,
    )


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, fast: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.fast = fast  # synchronous_commit off: only for what a crash may lose (put_presence)
        self.dsn = dsn
        self.listeners: list[ChangeListener] = []
        self.listening: asyncio.Task[None] | None = None
        self.is_listening = asyncio.Event()  # LISTEN is in place (tests wait for it)

    @classmethod
    async def open(cls, dsn: str) -> PostgresStore:
        """Connect, migrate (one process at a time), and LISTEN for other processes' changes."""
        options: dict[str, Any] = {"timeout": TIMEOUT_S, "command_timeout": TIMEOUT_S}
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8, **options)
        except OUTAGE as exc:
            raise Unavailable(
                f"Cannot reach the directory's PostgreSQL database: {type(exc).__name__}: {exc}"
            ) from None
        try:
            fast = await asyncpg.create_pool(
                dsn, min_size=1, max_size=4, server_settings={"synchronous_commit": "off"},
                **options,
            )  # fmt: skip
        except BaseException:
            await pool.close()
            raise
        store = cls(pool, fast, dsn)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            await fast.close()
            raise
        store.listening = asyncio.create_task(store._listen(), name="directory-listen")
        return store

    async def _migrate(self) -> None:
        async with self._transaction() as conn:
            await migrate(conn)

    async def _listen(self) -> None:
        await listen(self.dsn, self._changed, self.is_listening)

    def _changed(self, head: int) -> None:
        for listener in self.listeners:
            listener(head)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire(timeout=TIMEOUT_S) as conn, conn.transaction():
                yield conn
        except OUTAGE:
            raise await self._outage() from None

    async def _call(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], pool: asyncpg.Pool | None = None
    ) -> T:
        """One statement outside a transaction, an outage mapped."""
        try:
            async with (pool or self.pool).acquire(timeout=TIMEOUT_S) as conn:
                return await work(conn)
        except OUTAGE:
            raise await self._outage() from None

    async def _outage(self) -> Unavailable:
        """The pool's connections may all be dead: new ones for the next calls."""
        with contextlib.suppress(*OUTAGE):
            await self.pool.expire_connections()
            await self.fast.expire_connections()
        return unavailable()

    async def _stamp(self, conn: asyncpg.Connection, usernames: list[str]) -> int:
        """The next head (its row lock held to the commit), stamped on `usernames`, NOTIFYed."""
        head = int(await conn.fetchval("UPDATE change_head SET seq = seq + 1 RETURNING seq"))
        await conn.execute(
            "UPDATE users SET seq=$1 WHERE username = ANY($2::text[])", head, usernames
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(head))
        return head

    async def create_invite(self, username: str, *, rekey: bool, now: int, ttl_s: int) -> str:
        code = new_invite_code()
        await self._call(
            lambda c: c.execute(
                "INSERT INTO invites (code_hash, username, rekey, created_at, expires_at)"
                " VALUES ($1,$2,$3,$4,$5)",
                code_hash(code),
                username,
                rekey,
                now,
                now + ttl_s,
            )
        )
        return code

    async def enroll(
        self,
        user: UserRecord,
        keys: tuple[bytes, bytes, bytes],
        invite: str | None,
        *,
        open_registration: bool,
        now: int,
    ) -> None:
        identity_key, x25519_key, x25519_sig = keys
        async with self._transaction() as conn:
            row = None
            if invite is not None:  # locked: a second process spending it waits, then sees it used
                row = await conn.fetchrow(
                    "SELECT * FROM invites WHERE code_hash=$1 FOR UPDATE", code_hash(invite)
                )
            old_key = await conn.fetchval(
                "SELECT identity_key FROM users WHERE username=$1 FOR UPDATE", user.username
            )
            check_enrollment(
                user.username,
                None if row is None else _invite(row),
                has_invite=invite is not None,
                exists=old_key is not None,
                open_registration=open_registration,
                now=now,
            )
            if invite is not None:
                await conn.execute(
                    "UPDATE invites SET used_at=$1 WHERE code_hash=$2", now, code_hash(invite)
                )
            if old_key is None:
                inserted = await conn.fetchval(
                    "INSERT INTO users (username, identity_key, x25519_key, x25519_sig,"
                    " enrolled_at, seq) VALUES ($1,$2,$3,$4,$5,0) ON CONFLICT DO NOTHING"
                    " RETURNING 1",
                    user.username,
                    identity_key,
                    x25519_key,
                    x25519_sig,
                    now,
                )
                if inserted is None:  # another process enrolled the name in the meantime
                    raise taken(user.username)
            else:
                await conn.execute(
                    "UPDATE users SET identity_key=$2, x25519_key=$3, x25519_sig=$4,"
                    " enrolled_at=$5 WHERE username=$1",
                    user.username,
                    identity_key,
                    x25519_key,
                    x25519_sig,
                    now,
                )
                if bytes(old_key) != identity_key:  # the old key's prekeys are void (§14.3)
                    await conn.execute("DELETE FROM prekeys WHERE username=$1", user.username)
            await conn.execute("DELETE FROM presence WHERE username=$1", user.username)
            await self._stamp(conn, [user.username])

    async def identity_key_of(self, username: str) -> bytes | None:
        key = await self._call(
            lambda c: c.fetchval("SELECT identity_key FROM users WHERE username=$1", username)
        )
        return None if key is None else bytes(key)

    async def put_presence(self, record: PresenceRecord, expires_at: float) -> None:
        # A report that only keeps the record alive is one statement, committed without waiting
        # for the disk: a crash that loses it expires the record a report early.
        kept = await self._call(
            lambda c: c.fetchval(
                "UPDATE presence SET expires_at=$3 WHERE username=$1 AND material=$2"
                " AND published_ts > $4 RETURNING 1",
                record.username,
                material(record),
                expires_at,
                record.ts - REPUBLISH_S,
            ),
            self.fast,
        )
        if kept is not None:
            return
        async with self._transaction() as conn:
            old = await conn.fetchval(
                "SELECT record FROM presence WHERE username=$1 FOR UPDATE", record.username
            )
            published = None if old is None else PresenceRecord.model_validate_json(old)
            if published is not None and is_republish(published, record):
                await conn.execute(
                    "UPDATE presence SET expires_at=$2 WHERE username=$1",
                    record.username,
                    expires_at,
                )
                return
            await conn.execute(
                "INSERT INTO presence (username, record, material, published_ts, expires_at)"
                " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (username) DO UPDATE SET"
                " record=excluded.record, material=excluded.material,"
                " published_ts=excluded.published_ts, expires_at=excluded.expires_at",
                record.username,
                record.model_dump_json(),
                material(record),
                record.ts,
                expires_at,
            )
            await self._stamp(conn, [record.username])

    async def delete_presence(self, username: str) -> None:
        async with self._transaction() as conn:
            gone = await conn.fetchval(
                "DELETE FROM presence WHERE username=$1 RETURNING username", username
            )
            if gone is not None:
                await self._stamp(conn, [username])

    async def expire_presence(self, now: float) -> int:
        due = await self._call(
            lambda c: c.fetchval("SELECT count(*) FROM presence WHERE expires_at <= $1", now)
        )
        if not due:
            return 0
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM presence WHERE expires_at <= $1 RETURNING username", now
            )
            names = [str(r["username"]) for r in rows]
            if names:
                await self._stamp(conn, names)
        return len(names)

    async def entry(self, username: str) -> DirectoryEntry | None:
        row = await self._call(lambda c: c.fetchrow(ENTRIES + " WHERE u.username=$1", username))
        return None if row is None else entry_of(user_record(row), row["record"])

    async def listing(self) -> Changes:
        return await self.changes(0)

    async def changes(self, since: int) -> Changes:
        # One statement is one snapshot: the head and the rows of one moment.
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT h.seq AS head, e.* FROM change_head h LEFT JOIN ("
                + ENTRIES
                + " WHERE u.seq > $1) e ON TRUE ORDER BY e.username",
                since,
            )
        )
        head = int(rows[0]["head"]) if rows else 0
        if since > head:
            raise future_cursor(since, head)
        entries = [entry_of(user_record(r), r["record"]) for r in rows if r["username"]]
        return Changes(since, head, entries)

    async def head(self) -> int:
        return int(await self._call(lambda c: c.fetchval("SELECT seq FROM change_head")))

    async def list_users(self) -> list[UserRecord]:
        rows = await self._call(lambda c: c.fetch("SELECT * FROM users ORDER BY username"))
        return [user_record(r) for r in rows]

    async def replace_prekeys(self, username: str, records: list[PrekeyRecord]) -> int:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM prekeys WHERE username=$1", username)
            await conn.executemany(
                "INSERT INTO prekeys (username, key, fallback, record) VALUES ($1,$2,$3,$4)"
                " ON CONFLICT DO NOTHING",
                [(username, r.key, r.fallback, r.model_dump_json()) for r in records],
            )
        return await self.count_prekeys(username)

    async def count_prekeys(self, username: str) -> int:
        return int(
            await self._call(
                lambda c: c.fetchval(
                    "SELECT count(*) FROM prekeys WHERE username=$1 AND NOT fallback", username
                )
            )
        )

    async def claim_prekey(self, username: str) -> PrekeyRecord | None:
        async with self._transaction() as conn:
            # SKIP LOCKED: two processes claiming at once take two different keys.
            record = await conn.fetchval(
                "DELETE FROM prekeys WHERE n = (SELECT n FROM prekeys WHERE username=$1"
                " AND NOT fallback ORDER BY n LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING record",
                username,
            )
            if record is None:
                record = await conn.fetchval(
                    "SELECT record FROM prekeys WHERE username=$1 AND fallback", username
                )
        return None if record is None else PrekeyRecord.model_validate_json(record)

    async def keylog_entries(self, start: int, limit: int) -> list[KeyLogEntry]:
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT * FROM keylog WHERE position >= $1 ORDER BY position LIMIT $2", start, limit
            )
        )
        return [keylog_entry(row) for row in rows]

    async def keylog_identity_keys(self, username: str) -> list[bytes]:
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT identity_key FROM keylog WHERE username=$1 ORDER BY position DESC", username
            )
        )
        return [bytes(row["identity_key"]) for row in rows]

    async def close(self) -> None:
        if self.listening is not None:
            self.listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listening
        await self.pool.close()
        await self.fast.close()


def _invite(row: asyncpg.Record) -> InviteRow:
    return InviteRow(row["username"], bool(row["rekey"]), row["expires_at"], row["used_at"])

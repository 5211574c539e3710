"""The directory's embedded back end: one SQLite file in its data folder, one process (the folder
lock). The only SQL of that back end; the rules are directory/store.py's.

Being the only writer, it keeps the head, the identity keys, the published presence records and
their expiries in memory too: a signed request's key and a poll at the head touch no disk.
Every presence report is committed before it is answered, a report that only keeps a record alive
(most of them) as its new `expires_at`; the reports that arrive during one commit share the next
(group_commit.py), so one fsync serves many of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from flame.core.keylog import KeyLogEntry
from flame.core.models import DirectoryEntry, PresenceRecord, UserRecord
from flame.core.prekeys import PrekeyRecord
from flame.core.presence import is_republish
from flame.directory.group_commit import GroupCommit
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
    user_record,
)
from flame.store.db import Database, Tx, in_marks

SCHEMA = "flame.directory.schema"
DIRECTORY_DB = "directory.db"
ENTRIES = "SELECT u.*, p.record FROM users u LEFT JOIN presence p ON p.username = u.username"


@dataclass(frozen=True, slots=True)
class Report:
    record: PresenceRecord
    expires_at: float


class SqliteStore:
    def __init__(self, db: Database, head: int) -> None:
        self.db = db
        self.listeners: list[ChangeListener] = []
        self._head = head  # only this process writes the file (the folder lock)
        self.published: dict[str, PresenceRecord] = {}
        self.expiry: dict[str, float] = {}
        self.keys: dict[str, bytes] = {}  # identity keys, which every signed request looks up
        self.reports: GroupCommit[Report] = GroupCommit(self._commit_reports)

    @classmethod
    async def open(cls, data_dir: Path) -> SqliteStore:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = await Database.open(data_dir / DIRECTORY_DB, SCHEMA)
        row = await db.fetchone("SELECT seq FROM change_head")
        store = cls(db, 0 if row is None else int(row["seq"]))
        for r in await db.fetchall("SELECT username, identity_key FROM users"):
            store.keys[r["username"]] = bytes(r["identity_key"])
        for r in await db.fetchall("SELECT username, record, expires_at FROM presence"):
            store.published[r["username"]] = PresenceRecord.model_validate_json(r["record"])
            store.expiry[r["username"]] = float(r["expires_at"])
        return store

    def _forget(self, username: str) -> None:
        self.published.pop(username, None)
        self.expiry.pop(username, None)

    async def _stamp(self, conn: Tx, usernames: list[str]) -> int:
        """The next head, stamped on `usernames`, inside the caller's transaction."""
        async with conn.execute("UPDATE change_head SET seq = seq + 1 RETURNING seq") as cur:
            row = await cur.fetchone()
        assert row is not None
        head = int(row[0])
        await conn.execute(
            f"UPDATE users SET seq=? WHERE username IN ({in_marks(usernames)})",
            (head, *usernames),
        )
        return head

    def _changed(self, head: int) -> None:
        self._head = head
        for listener in self.listeners:
            listener(head)

    async def create_invite(self, username: str, *, rekey: bool, now: int, ttl_s: int) -> str:
        code = new_invite_code()
        await self.db.execute(
            "INSERT INTO invites (code_hash, username, rekey, created_at, expires_at)"
            " VALUES (?,?,?,?,?)",
            (code_hash(code), username, int(rekey), now, now + ttl_s),
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
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT 1 FROM users WHERE username=?", (user.username,)
            ) as cur:
                exists = await cur.fetchone() is not None
            row = None
            if invite is not None:
                async with conn.execute(
                    "SELECT * FROM invites WHERE code_hash=?", (code_hash(invite),)
                ) as cur:
                    row = await cur.fetchone()
            check_enrollment(
                user.username,
                None if row is None else _invite(row),
                has_invite=invite is not None,
                exists=exists,
                open_registration=open_registration,
                now=now,
            )
            if invite is not None:
                await conn.execute(
                    "UPDATE invites SET used_at=? WHERE code_hash=?", (now, code_hash(invite))
                )
            await conn.execute(
                "INSERT INTO users (username, identity_key, x25519_key, x25519_sig, enrolled_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT (username) DO UPDATE SET"
                " identity_key=excluded.identity_key, x25519_key=excluded.x25519_key,"
                " x25519_sig=excluded.x25519_sig, enrolled_at=excluded.enrolled_at",
                (user.username, identity_key, x25519_key, x25519_sig, now),
            )
            await conn.execute("DELETE FROM presence WHERE username=?", (user.username,))
            head = await self._stamp(conn, [user.username])
        self.keys[user.username] = identity_key
        self._forget(user.username)
        self._changed(head)

    async def identity_key_of(self, username: str) -> bytes | None:
        return self.keys.get(username)  # kept with every enrolment (the only writer)

    async def put_presence(self, record: PresenceRecord, expires_at: float) -> None:
        await self.reports.submit(Report(record, expires_at))

    async def _commit_reports(self, reports: list[Report]) -> None:
        """One transaction for `reports`, in their order: the ones that publish a record (a
        change, all of them stamped with one new head) and the ones that only move an expiry."""
        async with self.db.transaction() as conn:
            # Judged inside the transaction: what earlier commits published is in memory now.
            published: dict[str, PresenceRecord] = {}
            expiry: dict[str, float] = {}
            for report in reports:
                name = report.record.username
                before = published.get(name) or self.published.get(name)
                if before is None or not is_republish(before, report.record):
                    published[name] = report.record
                expiry[name] = report.expires_at
            if published:
                await conn.executemany(
                    "INSERT INTO presence (username, record, expires_at) VALUES (?,?,?)"
                    " ON CONFLICT (username) DO UPDATE SET record=excluded.record,"
                    " expires_at=excluded.expires_at",
                    [(n, r.model_dump_json(), expiry[n]) for n, r in published.items()],
                )
            kept = [(at, name) for name, at in expiry.items() if name not in published]
            if kept:
                await conn.executemany("UPDATE presence SET expires_at=? WHERE username=?", kept)
            head = await self._stamp(conn, sorted(published)) if published else None
        self.published.update(published)
        self.expiry.update(expiry)
        if head is not None:
            self._changed(head)

    async def delete_presence(self, username: str) -> None:
        if username not in self.published:
            return
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM presence WHERE username=?", (username,))
            head = await self._stamp(conn, [username])
        self._forget(username)
        self._changed(head)

    async def expire_presence(self, now: float) -> int:
        if not any(expiry <= now for expiry in self.expiry.values()):
            return 0
        async with self.db.transaction() as conn:
            # Chosen inside the transaction: a report committed while this one waited counts.
            names = [name for name, expiry in self.expiry.items() if expiry <= now]
            if not names:
                return 0
            await conn.execute(
                f"DELETE FROM presence WHERE username IN ({in_marks(names)})", tuple(names)
            )
            head = await self._stamp(conn, names)
        for name in names:
            self._forget(name)
        self._changed(head)
        return len(names)

    async def entry(self, username: str) -> DirectoryEntry | None:
        row = await self.db.fetchone(ENTRIES + " WHERE u.username=?", (username,))
        return None if row is None else entry_of(user_record(row), row["record"])

    async def listing(self) -> Changes:
        return await self.changes(0)

    async def changes(self, since: int) -> Changes:
        if since == self._head:  # the poll of a daemon that is up to date
            return Changes(since, since, [])
        async with self.db.transaction() as conn:  # the head and the rows of one moment
            async with conn.execute("SELECT seq FROM change_head") as cur:
                row = await cur.fetchone()
            head = 0 if row is None else int(row[0])
            if since > head:
                raise future_cursor(since, head)
            async with conn.execute(
                ENTRIES + " WHERE u.seq > ? ORDER BY u.username", (since,)
            ) as cur:
                rows = list(await cur.fetchall())
        return Changes(since, head, [entry_of(user_record(r), r["record"]) for r in rows])

    async def head(self) -> int:
        return self._head

    async def list_users(self) -> list[UserRecord]:
        rows = await self.db.fetchall("SELECT * FROM users ORDER BY username")
        return [user_record(r) for r in rows]

    async def replace_prekeys(self, username: str, records: list[PrekeyRecord]) -> int:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM prekeys WHERE username=?", (username,))
            await conn.executemany(
                "INSERT OR IGNORE INTO prekeys (username, key, fallback, record) VALUES (?,?,?,?)",
                [(username, r.key, int(r.fallback), r.model_dump_json()) for r in records],
            )
        return await self.count_prekeys(username)

    async def count_prekeys(self, username: str) -> int:
        row = await self.db.fetchone(
            "SELECT count(*) AS n FROM prekeys WHERE username=? AND fallback=0", (username,)
        )
        return 0 if row is None else int(row["n"])

    async def claim_prekey(self, username: str) -> PrekeyRecord | None:
        async with self.db.transaction() as conn:
            async with conn.execute(
                "DELETE FROM prekeys WHERE rowid = (SELECT rowid FROM prekeys WHERE username=?"
                " AND fallback=0 ORDER BY rowid LIMIT 1) RETURNING record",
                (username,),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                async with conn.execute(
                    "SELECT record FROM prekeys WHERE username=? AND fallback=1", (username,)
                ) as cursor:
                    row = await cursor.fetchone()
        return None if row is None else PrekeyRecord.model_validate_json(row["record"])

    async def keylog_entries(self, start: int, limit: int) -> list[KeyLogEntry]:
        rows = await self.db.fetchall(
            "SELECT * FROM keylog WHERE position >= ? ORDER BY position LIMIT ?", (start, limit)
        )
        return [keylog_entry(row) for row in rows]

    async def keylog_identity_keys(self, username: str) -> list[bytes]:
        rows = await self.db.fetchall(
            "SELECT identity_key FROM keylog WHERE username=? ORDER BY position DESC", (username,)
        )
        return [bytes(row["identity_key"]) for row in rows]

    async def close(self) -> None:
        await self.reports.drain()
        await self.db.close()


def _invite(row: aiosqlite.Row) -> InviteRow:
    return InviteRow(row["username"], bool(row["rekey"]), row["expires_at"], row["used_at"])

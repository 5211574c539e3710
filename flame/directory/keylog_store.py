"""The directory's key log (PROTOCOL.md §17): the SQL of the `keylog` table. Entries are written
by the triggers of migration 004 in the transaction of each enrolment; here they are only read."""

from __future__ import annotations

import aiosqlite

from flame.core.encoding import b64e
from flame.core.keylog import PAGE_MAX, KeyLogEntry
from flame.store.db import Database


def _entry(row: aiosqlite.Row) -> KeyLogEntry:
    return KeyLogEntry(
        username=row["username"],
        identity_key=b64e(row["identity_key"]),
        x25519_key=b64e(row["x25519_key"]),
        x25519_sig=b64e(row["x25519_sig"]),
        ts=row["ts"],
        kind=row["kind"],
    )


async def entries_from(db: Database, start: int, limit: int = PAGE_MAX) -> list[KeyLogEntry]:
    """Entries `start`, `start + 1`, ..., at most `limit` of them."""
    rows = await db.fetchall(
        "SELECT * FROM keylog WHERE position >= ? ORDER BY position LIMIT ?", (start, limit)
    )
    return [_entry(row) for row in rows]


async def identity_keys_of(db: Database, username: str) -> list[bytes]:
    """Every identity key the log ever held for `username`, newest first."""
    rows = await db.fetchall(
        "SELECT identity_key FROM keylog WHERE username=? ORDER BY position DESC", (username,)
    )
    return [bytes(row["identity_key"]) for row in rows]

"""The directory's key log as this daemon verified it (PROTOCOL.md §18.4): the head it took, the
frontier of that tree, every entry, and the alarms raised; the key log's public key it pinned is
a meta value. The only SQL of these tables."""

from __future__ import annotations

from dataclasses import dataclass

from flame.core.encoding import b64d, b64e
from flame.core.keylog import Frontier, KeyLogHead
from flame.store.db import Database, from_row
from flame.store.keystore import get_meta, set_meta

LOG_KEY = "keylog_key"


@dataclass(frozen=True, slots=True)
class LoggedKey:
    """An entry of the log: the keys the directory bound to `username` from `ts` on."""

    position: int
    username: str
    identity_key: bytes
    x25519_key: bytes
    ts: int
    kind: str


@dataclass(frozen=True, slots=True)
class Alarm:
    id: int
    key: str
    kind: str
    message: str
    raised_at: float
    evidence: str


async def load_log_key(db: Database) -> bytes | None:
    text = await get_meta(db, LOG_KEY)
    return None if not text else b64d(text, length=32, what=LOG_KEY)


async def save_log_key(db: Database, key: bytes) -> None:
    await set_meta(db, LOG_KEY, b64e(key))


async def load_head(db: Database) -> tuple[KeyLogHead, Frontier] | None:
    row = await db.fetchone("SELECT head, frontier FROM keylog_head WHERE id = 1")
    if row is None:
        return None
    head = KeyLogHead.model_validate_json(row["head"])
    return head, Frontier.decode(head.size, bytes(row["frontier"]))


async def load_entries(db: Database) -> list[LoggedKey]:
    rows = await db.fetchall("SELECT * FROM keylog_entries ORDER BY position")
    return [from_row(LoggedKey, row) for row in rows]


async def append(
    db: Database, head: KeyLogHead, frontier: Frontier, entries: list[LoggedKey]
) -> None:
    """The new head, its frontier and the entries it added, in one transaction."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO keylog_head (id, head, frontier) VALUES (1,?,?) ON CONFLICT (id)"
            " DO UPDATE SET head=excluded.head, frontier=excluded.frontier",
            (head.model_dump_json(), frontier.encode()),
        )
        await conn.executemany(
            "INSERT INTO keylog_entries (position, username, identity_key, x25519_key, ts, kind)"
            " VALUES (?,?,?,?,?,?)",
            [(e.position, e.username, e.identity_key, e.x25519_key, e.ts, e.kind) for e in entries],
        )


async def add_alarm(
    db: Database, key: str, kind: str, message: str, raised_at: float, evidence: str
) -> Alarm | None:
    """The alarm, or None when one with this key was raised before."""
    async with db.transaction() as conn:
        async with conn.execute(
            "INSERT INTO keylog_alarms (key, kind, message, raised_at, evidence)"
            " VALUES (?,?,?,?,?) ON CONFLICT (key) DO NOTHING RETURNING id",
            (key, kind, message, raised_at, evidence),
        ) as cursor:
            row = await cursor.fetchone()
    return None if row is None else Alarm(row["id"], key, kind, message, raised_at, evidence)


async def alarms(db: Database) -> list[Alarm]:
    rows = await db.fetchall("SELECT * FROM keylog_alarms ORDER BY id")
    return [from_row(Alarm, row) for row in rows]

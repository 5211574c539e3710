"""As a relay: sealed envelopes held for offline recipients, with quotas and expiry. A row keeps only
what hand-over, quotas and expiry need (PROTOCOL.md §13.3): the recipient, the envelope, its size,
its expiry and a depositor tag, never the depositor's name or the deposit time."""

from __future__ import annotations

from dataclasses import dataclass

from flame.core.models import Envelope
from flame.store.db import Database, in_marks


@dataclass(frozen=True, slots=True)
class Usage:
    count: int
    size: int

    def plus(self, size: int) -> Usage:
        """With one more deposit of `size` bytes."""
        return Usage(self.count + 1, self.size + size)


async def _usage(db: Database, where: str, keys: tuple[str | bytes, ...]) -> Usage:
    row = await db.fetchone(
        f"SELECT count(*), coalesce(sum(size), 0) FROM relay_deposits WHERE {where}", keys
    )
    assert row is not None
    return Usage(int(row[0]), int(row[1]))


async def usage_by_depositor(db: Database, depositor_tag: bytes) -> Usage:
    return await _usage(db, "depositor_tag=?", (depositor_tag,))


async def usage_by_recipient(db: Database, recipient: str) -> Usage:
    return await _usage(db, "recipient=?", (recipient,))


async def usage_by_pair(db: Database, depositor_tag: bytes, recipient: str) -> Usage:
    """What one depositor holds here for one recipient (its share of that recipient's quota)."""
    return await _usage(db, "depositor_tag=? AND recipient=?", (depositor_tag, recipient))


async def store_deposits(
    db: Database, depositor_tag: bytes, deposits: list[tuple[Envelope, float]]
) -> list[bool]:
    """Store (envelope, expires_at) pairs; True where new, False where already held."""
    results = []
    async with db.transaction() as conn:
        for envelope, expires_at in deposits:
            body = envelope.model_dump_json()
            cursor = await conn.execute(
                "INSERT OR IGNORE INTO relay_deposits (recipient, envelope_id, depositor_tag,"
                " envelope, size, expires_at) VALUES (?,?,?,?,?,?)",
                (envelope.to, envelope.id, depositor_tag, body, len(body), expires_at),
            )
            results.append(cursor.rowcount > 0)
    return results


async def held_for(db: Database, recipient: str, now: float, limit: int) -> list[Envelope]:
    rows = await db.fetchall(
        "SELECT envelope FROM relay_deposits WHERE recipient=? AND expires_at > ?"
        " ORDER BY rowid LIMIT ?",
        (recipient, now, limit),
    )
    return [Envelope.model_validate_json(row["envelope"]) for row in rows]


async def recipients(db: Database, now: float) -> list[str]:
    rows = await db.fetchall(
        "SELECT DISTINCT recipient FROM relay_deposits WHERE expires_at > ?", (now,)
    )
    return [row["recipient"] for row in rows]


async def drop(db: Database, recipient: str, envelope_ids: list[str]) -> int:
    """Drop what the recipient acknowledged. Returns how many were held."""
    if not envelope_ids:
        return 0
    marks = in_marks(envelope_ids)
    async with db.transaction() as conn:
        cursor = await conn.execute(
            f"DELETE FROM relay_deposits WHERE recipient=? AND envelope_id IN ({marks})",
            [recipient, *envelope_ids],
        )
        return cursor.rowcount


async def purge_expired(db: Database, now: float) -> int:
    async with db.transaction() as conn:
        cursor = await conn.execute("DELETE FROM relay_deposits WHERE expires_at <= ?", (now,))
        return cursor.rowcount


async def held_count(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM relay_deposits")
    assert row is not None
    return int(row[0])

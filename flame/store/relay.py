"""As a relay: sealed envelopes held for offline recipients, with quotas and expiry."""

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


async def _usage(db: Database, where: str, names: tuple[str, ...]) -> Usage:
    row = await db.fetchone(
        f"SELECT count(*), coalesce(sum(size), 0) FROM relay_deposits WHERE {where}", names
    )
    assert row is not None
    return Usage(int(row[0]), int(row[1]))


async def usage_by_depositor(db: Database, depositor: str) -> Usage:
    return await _usage(db, "depositor=?", (depositor,))


async def usage_by_recipient(db: Database, recipient: str) -> Usage:
    return await _usage(db, "recipient=?", (recipient,))


async def usage_by_pair(db: Database, depositor: str, recipient: str) -> Usage:
    """What one depositor holds here for one recipient (its share of that recipient's quota)."""
    return await _usage(db, "depositor=? AND recipient=?", (depositor, recipient))


async def store_deposits(
    db: Database, depositor: str, deposits: list[tuple[Envelope, float]], now: float
) -> list[bool]:
    """Store (envelope, expires_at) pairs; True where new, False where already held."""
    results = []
    async with db.transaction() as conn:
        for envelope, expires_at in deposits:
            body = envelope.model_dump_json()
            cursor = await conn.execute(
                "INSERT OR IGNORE INTO relay_deposits (recipient, envelope_id, depositor,"
                " envelope, size, deposited_at, expires_at) VALUES (?,?,?,?,?,?,?)",
                (envelope.to, envelope.id, depositor, body, len(body), now, expires_at),
            )
            results.append(cursor.rowcount > 0)
    return results


async def held_for(db: Database, recipient: str, now: float, limit: int) -> list[Envelope]:
    rows = await db.fetchall(
        "SELECT envelope FROM relay_deposits WHERE recipient=? AND expires_at > ?"
        " ORDER BY deposited_at, rowid LIMIT ?",
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

"""Delivered receipts owed to authors (PROTOCOL.md §13.2): owed in the transaction that stores the
messages, paid in the transaction that queues the receipts. The only SQL of receipts_owed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flame.store.db import Database, Tx


@dataclass(frozen=True, slots=True)
class Owed:
    """A delivered receipt owed to `author` for the envelope `envelope_id`."""

    author: str
    envelope_id: str


@dataclass(frozen=True, slots=True)
class OwedRow:
    rowid: int
    owed: Owed
    owed_at: float


async def owe(conn: Tx, owed: Sequence[Owed], now: float) -> None:
    """Inside the caller's transaction: what it stores is answered once it commits."""
    await conn.executemany(
        "INSERT INTO receipts_owed (author, envelope_id, owed_at) VALUES (?,?,?)",
        [(o.author, o.envelope_id, now) for o in owed],
    )


async def oldest(db: Database) -> float | None:
    """When the oldest receipt owed was owed (None: none is)."""
    rows = await db.fetchall("SELECT owed_at FROM receipts_owed ORDER BY id LIMIT 1")
    return float(rows[0]["owed_at"]) if rows else None


async def owed(db: Database, limit: int) -> list[OwedRow]:
    """The oldest `limit` receipts owed, in the order they were owed."""
    rows = await db.fetchall(
        "SELECT id, author, envelope_id, owed_at FROM receipts_owed ORDER BY id LIMIT ?", (limit,)
    )
    return [
        OwedRow(row["id"], Owed(row["author"], row["envelope_id"]), row["owed_at"]) for row in rows
    ]


async def settle(conn: Tx, rowids: Sequence[int]) -> None:
    """Inside the transaction that queues the receipts paying them."""
    await conn.executemany("DELETE FROM receipts_owed WHERE id = ?", [(r,) for r in rowids])

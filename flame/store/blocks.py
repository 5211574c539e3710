"""Blocked users (the only SQL for them). The daemon's logic lives in flame/blocks.py."""

from __future__ import annotations

from flame.store.db import Database


async def blocked_users(db: Database) -> dict[str, float]:
    """username -> blocked_at, by name."""
    rows = await db.fetchall("SELECT username, blocked_at FROM blocks ORDER BY username")
    return {row["username"]: float(row["blocked_at"]) for row in rows}


async def add_block(db: Database, username: str, now: float) -> None:
    await db.execute(
        "INSERT INTO blocks (username, blocked_at) VALUES (?, ?) ON CONFLICT (username) DO NOTHING",
        (username, now),
    )


async def remove_block(db: Database, username: str) -> None:
    await db.execute("DELETE FROM blocks WHERE username=?", (username,))

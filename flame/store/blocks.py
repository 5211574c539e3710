"""Blocked users, and blocks that ended (the only SQL for them). The rules live in
services/blocks.py."""

from __future__ import annotations

from flame.store.db import Database

Period = tuple[float, float]  # (blocked_at, unblocked_at), epoch seconds


async def blocked_users(db: Database) -> dict[str, float]:
    """username -> blocked_at, by name."""
    rows = await db.fetchall("SELECT username, blocked_at FROM blocks ORDER BY username")
    return {row["username"]: float(row["blocked_at"]) for row in rows}


async def block_periods(db: Database) -> dict[str, list[Period]]:
    """username -> the blocks of them that ended, oldest first."""
    rows = await db.fetchall(
        "SELECT username, blocked_at, unblocked_at FROM block_periods ORDER BY rowid"
    )
    periods: dict[str, list[Period]] = {}
    for row in rows:
        periods.setdefault(row["username"], []).append(
            (float(row["blocked_at"]), float(row["unblocked_at"]))
        )
    return periods


async def add_block(db: Database, username: str, now: float) -> None:
    await db.execute(
        "INSERT INTO blocks (username, blocked_at) VALUES (?, ?) ON CONFLICT (username) DO NOTHING",
        (username, now),
    )


async def remove_block(db: Database, username: str, now: float) -> Period | None:
    """End the block, keeping its period (PROTOCOL.md §12.4). Returns it; None if `username`
    was not blocked."""
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT blocked_at FROM blocks WHERE username=?", (username,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        period = (float(row["blocked_at"]), now)
        await conn.execute(
            "INSERT INTO block_periods (username, blocked_at, unblocked_at) VALUES (?, ?, ?)",
            (username, *period),
        )
        await conn.execute("DELETE FROM blocks WHERE username=?", (username,))
    return period

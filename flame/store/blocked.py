"""Blocked users, as far as files need them: their offers and chunks are refused.

Issue 5 brings blocking as a whole (the UI, refusal at the edge of the remote API); this is the
one question file transfers ask of it.
"""

from __future__ import annotations

from flame.store.db import Database


async def is_blocked(db: Database, username: str) -> bool:
    row = await db.fetchone("SELECT 1 FROM blocked_users WHERE username=?", (username,))
    return row is not None


async def set_blocked(db: Database, username: str, blocked: bool, now: float) -> None:
    if blocked:
        await db.execute(
            "INSERT OR IGNORE INTO blocked_users (username, blocked_at) VALUES (?, ?)",
            (username, now),
        )
    else:
        await db.execute("DELETE FROM blocked_users WHERE username=?", (username,))

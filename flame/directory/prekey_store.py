"""The directory's prekeys (PROTOCOL.md §14.3): the SQL of the `prekeys` table. A one-time key is
deleted in the statement that hands it out, so no two callers ever get the same one."""

from __future__ import annotations

from flame.core.prekeys import PrekeyRecord
from flame.store.db import Database


async def replace(db: Database, username: str, records: list[PrekeyRecord]) -> int:
    """Hold exactly these keys for `username`; returns how many one-time keys it holds."""
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM prekeys WHERE username=?", (username,))
        await conn.executemany(
            "INSERT OR IGNORE INTO prekeys (username, key, fallback, record) VALUES (?,?,?,?)",
            [(username, r.key, int(r.fallback), r.model_dump_json()) for r in records],
        )
    return await count(db, username)


async def count(db: Database, username: str) -> int:
    row = await db.fetchone(
        "SELECT count(*) AS n FROM prekeys WHERE username=? AND fallback=0", (username,)
    )
    return 0 if row is None else int(row["n"])


async def claim(db: Database, username: str) -> PrekeyRecord | None:
    """One one-time key of `username`, removed as it is taken; else the fallback key; else None."""
    async with db.transaction() as conn:
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

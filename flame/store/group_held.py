"""Copies of group messages held for a member whose key change this user has not accepted
(PROTOCOL.md §19.5; migration 016): kept unsealed (their `messages` row, and the group message's
text) until the new key is accepted, then sealed and queued like any copy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flame.store import outbox
from flame.store.db import Database, Tx


@dataclass(frozen=True, slots=True)
class HeldCopy:
    copy_id: str  # messages.id: '<me>:<envelope id>'
    member: str
    kind: str
    body: dict[str, Any]  # the copy's stored body (without the text)
    text: str  # the group message's text (a file's caption)
    sent_at: float
    group_message: str


HELD_REASON = "Held until you accept {member}'s new key."


async def hold(conn: Tx, copies: list[tuple[str, str]], now: float) -> None:
    """(copy id, member) pairs, within the caller's transaction; each copy's error says why."""
    await conn.executemany(
        "INSERT OR IGNORE INTO group_held (copy_id, member, held_at) VALUES (?,?,?)",
        [(copy_id, member, now) for copy_id, member in copies],
    )
    await conn.executemany(
        "UPDATE messages SET error=? WHERE id=?",
        [(HELD_REASON.format(member=member), copy_id) for copy_id, member in copies],
    )


async def hold_queued(db: Database, copies: list[tuple[str, str]], now: float) -> None:
    """Copies already queued, sealed under the key that changed: out of the outbox, held."""
    async with db.transaction() as conn:
        await conn.executemany(
            "DELETE FROM outbox WHERE message_id=?", [(copy_id,) for copy_id, _ in copies]
        )
        await hold(conn, copies, now)


async def held_for(db: Database, member: str) -> list[HeldCopy]:
    rows = await db.fetchall(
        "SELECT h.copy_id, h.member, m.kind, m.body, m.sent_at, g.text, g.id AS group_message"
        " FROM group_held h JOIN messages m ON m.id = h.copy_id"
        " JOIN group_copies c ON c.copy_id = h.copy_id"
        " JOIN group_messages g ON g.id = c.group_message"
        " WHERE h.member=? ORDER BY m.sent_at, h.copy_id",
        (member,),
    )
    return [
        HeldCopy(
            row["copy_id"],
            row["member"],
            row["kind"],
            json.loads(row["body"]),
            row["text"],
            row["sent_at"],
            row["group_message"],
        )
        for row in rows
    ]


async def release(db: Database, queued: list[outbox.Queued], now: float, ttl_s: float) -> None:
    """Held copies, sealed now: queued, and held no more, in ONE transaction."""
    async with db.transaction() as conn:
        await conn.executemany(
            "DELETE FROM group_held WHERE copy_id=?", [(q.message_id,) for q in queued]
        )
        await conn.executemany(
            "UPDATE messages SET error=NULL WHERE id=?", [(q.message_id,) for q in queued]
        )
        await outbox.enqueue(conn, queued, now, ttl_s)


async def drop(db: Database, copy_ids: list[str]) -> None:
    """Held copies that will not go (failed with their reason): held no more."""
    if copy_ids:
        await db.fetch_in(
            "DELETE FROM group_held WHERE copy_id IN ({}) RETURNING copy_id", copy_ids
        )

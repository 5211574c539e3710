"""The outbox: every outgoing envelope (messages and receipts) until its recipient's daemon has it,
with its retry schedule, relay bookkeeping and expiry (PROTOCOL.md §13)."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from flame.core import states
from flame.core.models import Envelope
from flame.store import sessions
from flame.store.db import Database, Tx, in_marks

# Message states move only forward (core/states.py has the order; this SQL is made from it).
STATE_RANK_SQL = states.rank_sql()
NOT_YET_SENT = f"{STATE_RANK_SQL} < {states.rank('sent')}"
NOT_YET_RELAYED = f"{STATE_RANK_SQL} < {states.rank('relayed')}"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    message_id: str
    kind: str
    peer: str
    envelope: Envelope
    attempts: int
    created_at: float
    relayed_at: float | None


@dataclass(frozen=True, slots=True)
class Queued:
    """A sealed envelope to queue: `message_id` is the message key, or 'receipt:<id>'."""

    message_id: str
    kind: str
    peer: str
    envelope: Envelope
    # Version 2: the session state after sealing it and the inner message it carries, written in
    # the same transaction as the envelope (PROTOCOL.md §14.6).
    ratchet: tuple[sessions.SessionState, str] | None = None


# What an entry is made of (not the inner message a version 2 entry keeps for a reset, §14.9).
ENTRY_COLUMNS = (
    "message_id, kind, peer, envelope, attempts, created_at, relayed_at, next_attempt_at"
)


def _entry(r: aiosqlite.Row) -> OutboxEntry:
    return OutboxEntry(
        r["message_id"],
        r["kind"],
        r["peer"],
        Envelope.model_validate_json(r["envelope"]),
        r["attempts"],
        r["created_at"],
        r["relayed_at"],
    )


async def enqueue(conn: Tx, items: list[Queued], now: float, ttl_s: float) -> None:
    """Queue envelopes inside the caller's transaction (so they commit with what caused them)."""
    await conn.executemany(
        "INSERT OR IGNORE INTO outbox (message_id, kind, peer, envelope, inner,"
        " next_attempt_at, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                i.message_id,
                i.kind,
                i.peer,
                i.envelope.model_dump_json(),
                _inner_of(i),
                now,
                now,
                now + ttl_s,
            )
            for i in items
        ],
    )
    await _write_states(conn, items)


def _inner_of(item: Queued) -> str | None:
    return None if item.ratchet is None else item.ratchet[1]


async def _write_states(conn: Tx, items: list[Queued]) -> None:
    """The latest state of each session that sealed one of `items` (one write per session)."""
    latest: dict[tuple[str, str], sessions.SessionState] = {}
    for item in items:
        if item.ratchet is not None:
            state = item.ratchet[0]
            key = (state.peer, state.session_id)
            if key not in latest or latest[key].generation < state.generation:
                latest[key] = state
    if latest:
        await sessions.write_sessions(conn, list(latest.values()))


async def replace_envelopes(db: Database, items: list[Queued]) -> None:
    """Put new envelopes (sealed again under a new session, PROTOCOL.md §14.9) in place of the
    queued ones, with their sessions' states, in one transaction; due at once."""
    async with db.transaction() as conn:
        await conn.executemany(
            "UPDATE outbox SET envelope=?, inner=coalesce(?, inner), next_attempt_at=0"
            " WHERE message_id=?",
            [(i.envelope.model_dump_json(), _inner_of(i), i.message_id) for i in items],
        )
        await _write_states(conn, items)


async def outgoing_v2(db: Database, peer: str) -> list[tuple[str, str, str]]:
    """(message id, kind, inner JSON) of every queued version 2 envelope to `peer`, in queue
    order (what a session reset seals again, PROTOCOL.md §14.9)."""
    rows = await db.fetchall(
        "SELECT message_id, kind, inner FROM outbox WHERE peer = ? AND inner IS NOT NULL"
        " ORDER BY rowid",
        (peer,),
    )
    return [(row["message_id"], row["kind"], row["inner"]) for row in rows]


# Each peer's queue is first in, first out (PROTOCOL.md §7.2): an entry goes only once every entry
# queued before it for the same peer has gone, so what refers to an earlier message (a file_cancel
# behind its offer, a receipt behind nothing) never overtakes it, even when the earlier one is
# backing off and the later one is new. The queue's head decides when the peer is due.


async def outbox_peers(db: Database) -> list[tuple[str, float]]:
    """Each peer with pending envelopes, and when the head of its queue is due."""
    # SQLite: with min(), the bare column comes from the row that has the minimum (the head).
    rows = await db.fetchall(
        "SELECT peer, next_attempt_at AS due, min(rowid) FROM outbox GROUP BY peer"
    )
    return [(row["peer"], float(row["due"])) for row in rows]


async def due_entries(db: Database, peer: str, now: float, limit: int) -> list[OutboxEntry]:
    """The due prefix of one peer's queue, in the order it was queued."""
    rows = await db.fetchall(
        f"SELECT {ENTRY_COLUMNS} FROM outbox WHERE peer=? ORDER BY rowid LIMIT ?", (peer, limit)
    )
    due = []
    for row in rows:
        if row["next_attempt_at"] > now:
            break
        due.append(_entry(row))
    return due


async def due_now(db: Database, peers: list[str]) -> None:
    """These peers were just seen online: their queues are due at once (attempts are kept, so a
    peer that fails again backs off from where it was)."""
    if not peers:
        return
    marks = in_marks(peers)
    await db.execute(f"UPDATE outbox SET next_attempt_at=0 WHERE peer IN ({marks})", tuple(peers))


async def pending_count(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM outbox")
    assert row is not None
    return int(row[0])


async def mark_sent(db: Database, message_ids: list[str]) -> None:
    """The recipient's daemon acknowledged: drop from the outbox, state -> sent, in one step."""
    if not message_ids:
        return
    marks = in_marks(message_ids)
    async with db.transaction() as conn:
        await conn.execute(f"DELETE FROM outbox WHERE message_id IN ({marks})", message_ids)
        await conn.execute(
            f"UPDATE messages SET state='sent', error=NULL WHERE id IN ({marks})"
            f" AND {NOT_YET_SENT}",
            message_ids,
        )


async def mark_retry(db: Database, retries: list[tuple[str, float, str]]) -> None:
    """(message_id, next_attempt_at, error) for entries that failed this time but stay queued."""
    if not retries:
        return
    async with db.transaction() as conn:
        await conn.executemany(
            "UPDATE outbox SET attempts=attempts+1, next_attempt_at=?, last_error=?"
            " WHERE message_id=?",
            [(when, error, message_id) for message_id, when, error in retries],
        )


async def mark_failed(db: Database, failures: list[tuple[str, str]]) -> None:
    """(message_id, reason): given up for good; a message shows as failed with the reason."""
    if not failures:
        return
    async with db.transaction() as conn:
        await conn.executemany(
            "DELETE FROM outbox WHERE message_id=?", [(message_id,) for message_id, _ in failures]
        )
        await conn.executemany(
            f"UPDATE messages SET state='failed', error=? WHERE id=? AND {NOT_YET_SENT}",
            [(reason, message_id) for message_id, reason in failures],
        )


async def expired(db: Database, now: float) -> list[OutboxEntry]:
    rows = await db.fetchall(f"SELECT {ENTRY_COLUMNS} FROM outbox WHERE expires_at <= ?", (now,))
    return [_entry(r) for r in rows]


# --- relays, from the sender's side -------------------------------------------------------------


async def to_relay(
    db: Database, now: float, after_s: float, retry_s: float, limit: int = 500
) -> list[OutboxEntry]:
    """Entries that direct delivery has failed for `after_s`, not yet held by relays, and not
    tried with relays in the last `retry_s`."""
    rows = await db.fetchall(
        f"SELECT {ENTRY_COLUMNS} FROM outbox WHERE attempts > 0 AND relayed_at IS NULL"
        " AND created_at <= ?"
        " AND (relay_tried_at IS NULL OR relay_tried_at <= ?) ORDER BY rowid LIMIT ?",
        (now - after_s, now - retry_s, limit),
    )
    return [_entry(r) for r in rows]


async def mark_relay_tried(db: Database, message_ids: list[str], now: float) -> None:
    async with db.transaction() as conn:
        await conn.executemany(
            "UPDATE outbox SET relay_tried_at=? WHERE message_id=?",
            [(now, message_id) for message_id in message_ids],
        )


async def mark_relayed(db: Database, message_ids: list[str], now: float) -> list[str]:
    """Relays hold these: state -> relayed (direct delivery keeps being tried). Returns the
    message keys whose visible state changed."""
    if not message_ids:
        return []
    marks = in_marks(message_ids)
    async with db.transaction() as conn:
        await conn.execute(
            f"UPDATE outbox SET relayed_at=?, relay_tried_at=? WHERE message_id IN ({marks})",
            [now, now, *message_ids],
        )
        async with conn.execute(
            f"SELECT id FROM messages WHERE id IN ({marks}) AND {NOT_YET_RELAYED}", message_ids
        ) as cursor:
            changed = [row["id"] for row in await cursor.fetchall()]
        await conn.execute(
            f"UPDATE messages SET state='relayed', error=NULL, relayed_at=? WHERE id IN ({marks})"
            f" AND {NOT_YET_RELAYED}",
            [now, *message_ids],
        )
    return changed


async def mark_relay_refused(db: Database, message_ids: list[str], reason: str) -> None:
    """Every relay refused: the message shows failed with the reason, but stays queued for
    direct delivery until it expires (a later success moves it on)."""
    async with db.transaction() as conn:
        await conn.executemany(
            f"UPDATE messages SET state='failed', error=? WHERE id=? AND {NOT_YET_RELAYED}",
            [(reason, message_id) for message_id in message_ids],
        )

"""Version 2 state (PROTOCOL.md §14): the Olm account, the sessions per peer, the ratchet
messages opened (by author and envelope id), the inner messages of queued version 2 envelopes, and
the versions peers speak. The only SQL of these tables.

Pickles are written only inside the caller's transaction, together with what their change
produced (§14.6), and a pickle never replaces a later `generation` of itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flame.core.models import Inner
from flame.errors import RequestError
from flame.store.db import Database, Tx, from_row, in_marks
from flame.store.keystore import get_meta, set_meta

ERASED: Literal["erased"] = "erased"  # opened before, then deleted: answered as a duplicate
Opened = Inner | RequestError | Literal["erased"]  # what opening a ratchet message gives


@dataclass(frozen=True, slots=True)
class SessionState:
    """One session's state after an encryption or decryption, to persist."""

    peer: str
    session_id: str
    pickle: str
    generation: int
    created_at: float
    received_at: float | None = None


@dataclass(frozen=True, slots=True)
class AccountState:
    pickle: str
    generation: int


@dataclass(frozen=True, slots=True)
class Staged:
    """A ratchet message opened: its author, envelope id and decrypted inner JSON."""

    author: str
    envelope_id: str
    inner: str
    received_at: float


# --- the account -----------------------------------------------------------------------------


async def load_account(db: Database) -> AccountState | None:
    row = await db.fetchone("SELECT pickle, generation FROM ratchet_account WHERE id = 1")
    return None if row is None else AccountState(row["pickle"], row["generation"])


async def write_account(conn: Tx, state: AccountState) -> None:
    await conn.execute(
        "INSERT INTO ratchet_account (id, pickle, generation) VALUES (1,?,?)"
        " ON CONFLICT (id) DO UPDATE SET pickle=excluded.pickle, generation=excluded.generation"
        " WHERE excluded.generation > ratchet_account.generation",
        (state.pickle, state.generation),
    )


async def save_account(db: Database, state: AccountState) -> None:
    async with db.transaction() as conn:
        await write_account(conn, state)


# --- sessions --------------------------------------------------------------------------------


async def load_sessions(db: Database, peer: str) -> list[SessionState]:
    """The peer's sessions, the one to send with first: the one that last opened a message from
    the peer, else the newest (PROTOCOL.md §14.5)."""
    rows = await db.fetchall(
        "SELECT * FROM ratchet_sessions WHERE peer = ?"
        " ORDER BY received_at IS NULL, received_at DESC, created_at DESC",
        (peer,),
    )
    return [from_row(SessionState, row) for row in rows]


async def write_sessions(conn: Tx, states: Sequence[SessionState]) -> None:
    await conn.executemany(
        "INSERT INTO ratchet_sessions (peer, session_id, pickle, generation, created_at,"
        " received_at) VALUES (?,?,?,?,?,?) ON CONFLICT (peer, session_id) DO UPDATE SET"
        " pickle=excluded.pickle, generation=excluded.generation,"
        " received_at=coalesce(excluded.received_at, ratchet_sessions.received_at)"
        " WHERE excluded.generation > ratchet_sessions.generation",
        [
            (s.peer, s.session_id, s.pickle, s.generation, s.created_at, s.received_at)
            for s in states
        ],
    )


async def save_sessions(db: Database, states: Sequence[SessionState]) -> None:
    async with db.transaction() as conn:
        await write_sessions(conn, states)


async def delete_sessions(db: Database, peer: str) -> None:
    """Forget every session with `peer` (a reset, PROTOCOL.md §14.9)."""
    await db.execute("DELETE FROM ratchet_sessions WHERE peer = ?", (peer,))


async def prune_sessions(db: Database, peer: str, keep: int) -> None:
    """Keep the peer's `keep` sessions last used (their skipped keys go with the others)."""
    await db.execute(
        "DELETE FROM ratchet_sessions WHERE peer = ? AND session_id NOT IN (SELECT session_id"
        " FROM ratchet_sessions WHERE peer = ?"
        " ORDER BY max(coalesce(received_at, 0), created_at) DESC LIMIT ?)",
        (peer, peer, keep),
    )


# --- messages opened, and the inner messages of queued envelopes --------------------------------


async def staged(db: Database, author: str, envelope_ids: Sequence[str]) -> dict[str, Inner | None]:
    """The inner messages of the ratchet messages from `author` with these ids already opened
    (None: opened, and its text erased since, PROTOCOL.md §17.3)."""
    if not envelope_ids:
        return {}
    rows = await db.fetchall(
        "SELECT envelope_id, inner FROM ratchet_inbox WHERE author = ?"
        f" AND envelope_id IN ({in_marks(envelope_ids)})",
        (author, *envelope_ids),
    )
    return {
        row["envelope_id"]: Inner.model_validate_json(row["inner"]) if row["inner"] else None
        for row in rows
    }


async def stage(
    db: Database,
    opened: Sequence[Staged],
    states: Sequence[SessionState],
    account: AccountState | None,
) -> None:
    """Store what was decrypted and the states that decrypted it in ONE transaction, atomic but
    not synced to disk on its own (PROTOCOL.md §14.6): a receiver that stores something commits
    durably before the 2xx, which syncs the write-ahead log holding this too; one that stores
    nothing loses nothing if a power cut takes this back (with the states, together)."""
    async with db.transaction(durable=False) as conn:
        await conn.executemany(
            "INSERT OR IGNORE INTO ratchet_inbox (author, envelope_id, inner, received_at)"
            " VALUES (?,?,?,?)",
            [(s.author, s.envelope_id, s.inner, s.received_at) for s in opened],
        )
        await write_sessions(conn, states)
        if account is not None:
            await write_account(conn, account)


async def erase_opened(conn: Tx, message_keys: Sequence[str]) -> None:
    """Forget the text of these opened messages ("author:envelope id") but not that they were
    opened: a copy that comes again is still answered, never decrypted (PROTOCOL.md §17.3)."""
    await conn.executemany(
        "UPDATE ratchet_inbox SET inner = '' WHERE author = ? AND envelope_id = ? AND inner != ''",
        [tuple(key.split(":", 1)) for key in message_keys],
    )


async def prune_staged(db: Database, before: float) -> None:
    """Drop what was opened before `before`: no copy of it can still come (PROTOCOL.md §14.6)."""
    await db.execute("DELETE FROM ratchet_inbox WHERE received_at < ?", (before,))


async def write_outgoing(conn: Tx, inners: Sequence[tuple[str, str]]) -> None:
    """Keep (message id, inner JSON) of queued version 2 envelopes (the outbox's trigger drops
    them with their entry)."""
    await conn.executemany(
        "INSERT OR REPLACE INTO ratchet_outbox (message_id, inner) VALUES (?,?)", list(inners)
    )


async def outgoing_for(db: Database, peer: str) -> list[tuple[str, str, str]]:
    """(message id, kind, inner JSON) of every queued version 2 envelope to `peer`, in queue
    order."""
    rows = await db.fetchall(
        "SELECT o.message_id, o.kind, r.inner FROM outbox o"
        " JOIN ratchet_outbox r ON r.message_id = o.message_id WHERE o.peer = ? ORDER BY o.rowid",
        (peer,),
    )
    return [(row["message_id"], row["kind"], row["inner"]) for row in rows]


# --- versions --------------------------------------------------------------------------------


async def versions_of(db: Database, peer: str) -> tuple[tuple[int, ...], int] | None:
    """The versions `peer` speaks and the time of the signed record that said so (0: a claim
    that found no prekeys)."""
    row = await db.fetchone("SELECT versions, ts FROM peer_versions WHERE username = ?", (peer,))
    return None if row is None else (tuple(json.loads(row["versions"])), int(row["ts"]))


async def versions_of_many(
    db: Database, peers: Sequence[str]
) -> dict[str, tuple[tuple[int, ...], int]]:
    """`versions_of` for each of `peers` that has a row, in one query."""
    rows = await db.fetch_in(
        "SELECT username, versions, ts FROM peer_versions WHERE username IN ({})", list(peers)
    )
    return {r["username"]: (tuple(json.loads(r["versions"])), int(r["ts"])) for r in rows}


async def set_peer_versions(db: Database, updates: Sequence[tuple[str, list[int], int]]) -> None:
    """Record the versions of signed records newer than the one held."""
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO peer_versions (username, versions, ts) VALUES (?,?,?)"
            " ON CONFLICT (username) DO UPDATE SET versions=excluded.versions, ts=excluded.ts"
            " WHERE excluded.ts > peer_versions.ts",
            [(name, json.dumps(versions), ts) for name, versions, ts in updates],
        )


def advanced(
    old: SessionState | None, peer: str, session_id: str, pickle: str, now: float
) -> SessionState:
    """The state after `old` (None: a session just started) opened a message at `now`."""
    if old is None:
        return SessionState(peer, session_id, pickle, 1, now, now)
    return SessionState(peer, session_id, pickle, old.generation + 1, old.created_at, now)


async def note_reset(db: Database, peer: str, at: float) -> None:
    """Remember when the session with `peer` was reset (the conversation keeps a notice)."""
    await set_meta(db, f"session_reset:{peer}", repr(at))


async def reset_at(db: Database, peer: str) -> float | None:
    value = await get_meta(db, f"session_reset:{peer}")
    return None if value is None else float(value)


async def has_sessions(db: Database, peer: str) -> bool:
    row = await db.fetchone("SELECT 1 FROM ratchet_sessions WHERE peer = ? LIMIT 1", (peer,))
    return row is not None

"""Version 2 state (PROTOCOL.md §14): the Olm account, the sessions per peer, the ratchet
messages opened (by author and envelope id), and the versions peers speak (the inner messages of
queued version 2 envelopes are in their outbox rows, store/outbox.py). The only SQL of these tables.

Pickles are written only inside the caller's transaction, together with what their change
produced (§14.6), and a pickle never replaces a later `generation` of itself.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flame.core.models import Inner
from flame.errors import RequestError
from flame.store.db import Database, Tx, from_row
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


# --- messages opened -----------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class OpenedIndex:
    """Where each ratchet message opened is in `ratchet_inbox`: hash of (author, envelope id) ->
    rowid (a tuple of rowids for hashes that collide), kept in memory (PROTOCOL.md §14.6).

    The table is appended to in the order messages were opened, so a stage writes a few pages at
    its end; a unique index on (author, envelope id) would take a page per message anywhere in it,
    since envelope ids are random. A row found is checked against its (author, envelope id), so
    keys that share a hash cost a read, never a wrong answer. Loaded from the table at first use:
    this process is the only one that writes its database (store/db.FolderLock)."""

    rows: dict[int, int | tuple[int, ...]] = field(default_factory=dict)
    next_rowid: int = 1
    loaded: bool = False

    def load(self, rows: Sequence[Sequence[Any]]) -> None:
        """(rowid, author, envelope id) of every row of the table."""
        for rowid, author, envelope_id in rows:
            self.add(author, envelope_id, rowid)
        self.next_rowid = max((row[0] for row in rows), default=0) + 1
        self.loaded = True

    def add(self, author: str, envelope_id: str, rowid: int) -> None:
        key = hash((author, envelope_id))
        held = self.rows.get(key)
        if held is None:
            self.rows[key] = rowid
        else:
            self.rows[key] = (*_rowids(held), rowid)

    def drop(self, author: str, envelope_id: str, rowid: int) -> None:
        key = hash((author, envelope_id))
        left = tuple(r for r in _rowids(self.rows.get(key)) if r != rowid)
        if not left:
            self.rows.pop(key, None)
        else:
            self.rows[key] = left[0] if len(left) == 1 else left

    def candidates(self, author: str, envelope_ids: Sequence[str]) -> list[int]:
        """The rowids that may hold one of these messages (to be checked against the row)."""
        found: list[int] = []
        for envelope_id in envelope_ids:
            found.extend(_rowids(self.rows.get(hash((author, envelope_id)))))
        return found

    def take_rowids(self, count: int) -> range:
        first = self.next_rowid
        self.next_rowid += count
        return range(first, first + count)


def _rowids(held: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if held is None:
        return ()
    return held if isinstance(held, tuple) else (held,)


# One index per open database (a test may open several daemons' databases in one process).
_INDEXES: weakref.WeakKeyDictionary[Database, OpenedIndex] = weakref.WeakKeyDictionary()
_LOAD_SQL = "SELECT id, author, envelope_id FROM ratchet_inbox ORDER BY id"


async def opened_index(db: Database) -> OpenedIndex:
    """The index of `db`, loaded from its table (on the database's thread) at the first use."""
    index = _INDEXES.setdefault(db, OpenedIndex())
    if not index.loaded:
        rows = await db.fetchall(_LOAD_SQL, slow=True)
        if not index.loaded:  # another caller may have loaded it meanwhile
            index.load(rows)
    return index


def _index_in(conn: Tx) -> OpenedIndex:
    """`opened_index` inside a transaction (its statements run on the loop's thread)."""
    index = _INDEXES.setdefault(conn.db, OpenedIndex())
    if not index.loaded:
        index.load(conn.raw.execute(_LOAD_SQL).fetchall())
    return index


async def staged(db: Database, author: str, envelope_ids: Sequence[str]) -> dict[str, Inner | None]:
    """The inner messages of the ratchet messages from `author` with these ids already opened
    (None: opened, and its text erased since, PROTOCOL.md §17.3). Nothing is read when none was."""
    index = await opened_index(db)
    rowids = index.candidates(author, envelope_ids)
    if not rowids:
        return {}
    rows = await db.fetch_in(
        "SELECT author, envelope_id, inner FROM ratchet_inbox WHERE id IN ({})", rowids
    )
    wanted = set(envelope_ids)
    return {
        row["envelope_id"]: Inner.model_validate_json(row["inner"]) if row["inner"] else None
        for row in rows
        if row["author"] == author and row["envelope_id"] in wanted
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
    nothing loses nothing if a power cut takes this back (with the states, together).

    The caller holds the author's lock and asked `staged` first: none of `opened` is stored yet."""
    index = await opened_index(db)
    rowids = index.take_rowids(len(opened))
    async with db.transaction(durable=False) as conn:
        await conn.executemany(
            "INSERT INTO ratchet_inbox (id, author, envelope_id, inner, received_at)"
            " VALUES (?,?,?,?,?)",
            [
                (rowid, s.author, s.envelope_id, s.inner, s.received_at)
                for rowid, s in zip(rowids, opened, strict=True)
            ],
        )
        await write_sessions(conn, states)
        if account is not None:
            await write_account(conn, account)
    for rowid, s in zip(rowids, opened, strict=True):  # committed: known from now on
        index.add(s.author, s.envelope_id, rowid)


async def erase_opened(conn: Tx, message_keys: Sequence[str]) -> None:
    """Forget the text of these opened messages ("author:envelope id") but not that they were
    opened: a copy that comes again is still answered, never decrypted (PROTOCOL.md §17.3)."""
    if not message_keys:
        return
    index = _index_in(conn)
    rows = [
        (rowid, author, envelope_id)
        for author, envelope_id in (key.split(":", 1) for key in message_keys)
        for rowid in index.candidates(author, [envelope_id])
    ]
    await conn.executemany(
        "UPDATE ratchet_inbox SET inner = '' WHERE id = ? AND author = ? AND envelope_id = ?"
        " AND inner != ''",
        rows,
    )


async def prune_staged(db: Database, before: float) -> None:
    """Drop what was opened before `before`: no copy of it can still come (PROTOCOL.md §14.6)."""
    index = await opened_index(db)
    async with db.transaction() as conn:
        gone = await conn.execute_fetchall(
            "DELETE FROM ratchet_inbox WHERE received_at < ? RETURNING id, author, envelope_id",
            (before,),
        )
    for rowid, author, envelope_id in gone:
        index.drop(author, envelope_id, rowid)


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

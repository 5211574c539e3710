"""Messages and the outbox. A message and its outbox entry are written in one transaction."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from flame.core import states
from flame.core.actions import QUEUED_ACTIONS, Ref
from flame.core.group_models import GROUP_COPY_KINDS
from flame.core.models import Envelope, Inner
from flame.store import outbox, sessions
from flame.store import receipts as owed_store
from flame.store.db import Database, Tx, from_row, in_marks
from flame.store.receipts import Owed
from flame.store.sessions import SessionState

# Inner kinds that travel through the outbox like messages but are not shown in a conversation
# (a profile update is sent to every contact, PROTOCOL.md §12.1; edits, deletes and reactions
# change the message they target, §17), and the row that stands for a message deleted before it
# arrived, and group copies (§19.5). A message deleted "for me" is not shown either.
HIDDEN_KINDS = ("profile_update", *QUEUED_ACTIONS, "tombstone", *GROUP_COPY_KINDS)
GROUP_COPIES_SQL = ",".join(f"'{kind}'" for kind in GROUP_COPY_KINDS)
SHOWN_SQL = (
    "kind NOT IN (" + ",".join(f"'{kind}'" for kind in HIDDEN_KINDS) + ")"
    " AND coalesce(deleted, '') != 'me'"
)
Effect = Callable[[Tx], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Quote:
    """What a reply shows of the message it answers (PROTOCOL.md §17.1): `state` is "shown",
    "deleted" (a tombstone) or "missing" (never here, or deleted for me)."""

    id: str
    author: str
    kind: str
    text: str
    state: str


@dataclass(frozen=True, slots=True)
class ReactionCount:
    """One emoji on a message, and who put it there, first to last."""

    emoji: str
    people: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    rowid: int
    id: str
    peer: str
    direction: str
    author: str
    seq: int
    kind: str
    body: dict[str, Any]
    sent_at: float
    received_at: float | None
    state: str
    error: str | None
    version: int | None = None  # the protocol version an incoming message arrived under
    relayed_at: float | None = None  # when relays accepted a copy (outgoing, PROTOCOL.md §13.3)
    edited_at: float | None = None
    deleted: str | None = None  # "everyone" (a tombstone) or "me" (not shown)
    # Filled by store/actions.decorate for the UI (the message replied to, the reactions).
    quote: Quote | None = None
    reactions: tuple[ReactionCount, ...] = ()

    @property
    def is_shown(self) -> bool:
        return self.kind not in HIDDEN_KINDS and self.deleted != "me"

    @property
    def reply_to(self) -> Ref | None:
        raw = self.body.get("reply_to")
        return Ref.model_validate(raw) if isinstance(raw, dict) else None


def message_from_row(r: aiosqlite.Row) -> Message:
    return from_row(Message, r, body=json.loads(r["body"]), quote=None, reactions=())


def target_of(inner: Inner) -> str | None:
    """The key of the message an edit, delete or reaction acts on (PROTOCOL.md §17)."""
    target = getattr(inner.body, "target", None)
    return target.key if isinstance(target, Ref) else None


def message_key(author: str, envelope_id: str) -> str:
    """A message's local key. Envelope ids are random, but only their author vouches for them:
    keying by (author, id) means nobody can pre-empt alice's message by sending one of their own
    with the id they saw on the wire (it would only be deduplicated against their own)."""
    return f"{author}:{envelope_id}"


@dataclass(frozen=True, slots=True)
class Incoming:
    """An opened, verified envelope ready to store, and when it arrived (the receiver's clock:
    the author's `ts` is theirs, and says nothing about delivery)."""

    inner: Inner
    received_at: float
    version: int = 1  # the protocol version it arrived under (2: inside a session, §14)

    @property
    def key(self) -> str:
        return message_key(self.inner.from_, self.inner.id)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A sealed message ready to store: the inner message and its envelope (and, for version 2,
    the session state after sealing it, PROTOCOL.md §14.6)."""

    inner: Inner
    envelope: Envelope
    ratchet: tuple[SessionState, str] | None = None
    effect: Effect | None = None  # what it changes here, in the same transaction (§17)


async def next_sequences(db: Database, peers: list[str]) -> dict[str, int]:
    """The next sequence number of each conversation (1 for a new one)."""
    marks = in_marks(peers)
    rows = await db.fetchall(
        f"SELECT peer, next_seq FROM sequences WHERE peer IN ({marks})", tuple(peers)
    )
    found = {row["peer"]: int(row["next_seq"]) for row in rows}
    return {peer: found.get(peer, 1) for peer in peers}


async def store_outgoing(
    db: Database, me: str, items: list[Outgoing], now: float, ttl_s: float
) -> list[Message]:
    """Store messages, their outbox entries and the advanced sequence numbers in ONE transaction
    (one fsync for the whole group), before anything touches the network (PROTOCOL.md §13)."""
    keys = [message_key(me, i.inner.id) for i in items]
    next_seq: dict[str, int] = {}
    for item in items:
        if item.inner.seq:  # control kinds carry 0 and leave the sequence alone
            next_seq[item.inner.to] = max(next_seq.get(item.inner.to, 0), item.inner.seq + 1)
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at, state,"
            " target) VALUES (?,?,?,?,?,?,?,?,'sending',?)",
            [
                (
                    key,
                    i.inner.to,
                    "out",
                    me,
                    i.inner.seq,
                    i.inner.kind,
                    i.inner.body.stored_json(),
                    i.inner.ts / 1000,
                    target_of(i.inner),
                )
                for key, i in zip(keys, items, strict=True)
            ],
        )
        await outbox.enqueue(
            conn,
            [
                outbox.Queued(key, i.inner.kind, i.inner.to, i.envelope, i.ratchet)
                for key, i in zip(keys, items, strict=True)
            ],
            now,
            ttl_s,
        )
        await conn.executemany(
            "INSERT INTO sequences (peer, next_seq) VALUES (?, ?)"
            " ON CONFLICT (peer) DO UPDATE SET next_seq = excluded.next_seq",
            list(next_seq.items()),
        )
        for item in items:
            if item.effect is not None:
                await item.effect(conn)
        marks = in_marks(items)
        async with conn.execute(f"SELECT * FROM messages WHERE id IN ({marks})", keys) as cursor:
            stored = {row["id"]: message_from_row(row) for row in await cursor.fetchall()}
    return [stored[key] for key in keys]


async def store_incoming(
    db: Database,
    items: list[Incoming],
    receipts: Sequence[Owed] = (),
    effect: Callable[[Tx, Incoming], Awaitable[object]] | None = None,
) -> list[Message | None]:
    """Store new messages in one transaction, with the delivered receipts they owe (so a crash
    cannot keep one without the other, PROTOCOL.md §13.2) and what each new one changes (`effect`: an edit, a
    delete, a reaction, PROTOCOL.md §17); a known (author, id) is a duplicate and changes nothing.
    A duplicate of a deleted message also erases the copy version 2 kept of it (§17.3).

    Returns, per item, the stored Message or None for a duplicate.
    """
    results: list[Message | None] = [None] * len(items)
    if not items:
        return results
    async with db.transaction() as conn:
        ids = [item.key for item in items]
        marks = in_marks(ids)
        async with conn.execute(
            f"SELECT id, deleted FROM messages WHERE id IN ({marks})", ids
        ) as cur:
            rows = list(await cur.fetchall())
        known = {row["id"] for row in rows}
        await sessions.erase_opened(conn, [key for key in known if key in _deleted_keys(rows)])
        fresh: list[tuple[int, Incoming]] = []
        for index, item in enumerate(items):
            if item.key not in known:
                known.add(item.key)
                fresh.append((index, item))
        await conn.executemany(
            "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at,"
            " received_at, state, version, target) VALUES (?,?,?,?,?,?,?,?,?,'received',?,?)",
            [
                (
                    i.key,
                    i.inner.from_,
                    "in",
                    i.inner.from_,
                    i.inner.seq,
                    i.inner.kind,
                    i.inner.body.stored_json(),
                    i.inner.ts / 1000,
                    i.received_at,
                    i.version,
                    target_of(i.inner),
                )
                for _, i in fresh
            ],
        )
        if effect is not None:
            for _, item in fresh:
                await effect(conn, item)
        await owed_store.owe(conn, receipts, items[0].received_at)
        if fresh:
            marks = in_marks(fresh)
            async with conn.execute(
                f"SELECT * FROM messages WHERE id IN ({marks})", [i.key for _, i in fresh]
            ) as cur:
                stored = {row["id"]: message_from_row(row) for row in await cur.fetchall()}
            for index, item in fresh:
                results[index] = stored[item.key]
    return results


def _deleted_keys(rows: Sequence[aiosqlite.Row]) -> set[str]:
    return {row["id"] for row in rows if row["deleted"] is not None}


async def list_messages(
    db: Database, peer: str, *, before: tuple[float, int, int] | None, limit: int
) -> list[Message]:
    """A page of a conversation, oldest first, ending just before the cursor (sent_at, seq,
    rowid). Ordered by the author's time and then the author's sequence number, so a late arrival
    slots into place (PROTOCOL.md §13.4)."""
    if before is None:
        rows = await db.fetchall(
            f"SELECT * FROM messages WHERE peer=? AND {SHOWN_SQL}"
            " ORDER BY sent_at DESC, seq DESC, rowid DESC LIMIT ?",
            (peer, limit),
        )
    else:
        rows = await db.fetchall(
            f"SELECT * FROM messages WHERE peer=? AND {SHOWN_SQL}"
            " AND (sent_at, seq, rowid) < (?, ?, ?)"
            " ORDER BY sent_at DESC, seq DESC, rowid DESC LIMIT ?",
            (peer, *before, limit),
        )
    return [message_from_row(row) for row in reversed(rows)]


async def mark_read(db: Database, peer: str, up_to_rowid: int) -> list[str]:
    """The user has seen the conversation up to `up_to_rowid`. Returns the envelope ids of the
    incoming messages read just now (for read receipts)."""
    async with db.transaction() as conn:
        async with conn.execute(
            f"SELECT id FROM messages WHERE peer=? AND direction='in' AND {SHOWN_SQL}"
            " AND rowid <= ? AND rowid > coalesce((SELECT last_read_rowid FROM reads WHERE peer=?), 0)",
            (peer, up_to_rowid, peer),
        ) as cursor:
            keys = [row["id"] for row in await cursor.fetchall()]
        await conn.execute(
            "INSERT INTO reads (peer, last_read_rowid) VALUES (?, ?) ON CONFLICT (peer) DO UPDATE"
            " SET last_read_rowid = max(last_read_rowid, excluded.last_read_rowid)",
            (peer, up_to_rowid),
        )
    return [key.split(":", 1)[1] for key in keys]


async def newest_rowid(db: Database, peer: str) -> int:
    row = await db.fetchone("SELECT max(rowid) FROM messages WHERE peer=?", (peer,))
    return int(row[0]) if row is not None and row[0] is not None else 0


async def apply_receipt(
    db: Database, me: str, peer: str, state: str, envelope_ids: list[str]
) -> list[str]:
    """`peer` says it has our messages (`delivered`) or its user saw them (`read`): move their
    states forward only, and stop retrying them. Returns the keys whose state changed."""
    keys = [message_key(me, envelope_id) for envelope_id in envelope_ids]
    if not keys:
        return []
    marks = in_marks(keys)
    rank = states.rank(state)
    async with db.transaction() as conn:
        await conn.execute(f"DELETE FROM outbox WHERE message_id IN ({marks})", keys)
        # `+peer`: looked up by id, never by a scan of the conversation (SQLite's planner would
        # take the peer's index for `peer=?`, and the cost would grow with the history).
        async with conn.execute(  # what a conversation shows, and group copies (§19.5)
            f"SELECT id FROM messages WHERE id IN ({marks}) AND +peer=? AND direction='out'"
            f" AND {outbox.STATE_RANK_SQL} < ? AND ({SHOWN_SQL} OR kind IN ({GROUP_COPIES_SQL}))",
            [*keys, peer, rank],
        ) as cursor:
            changed = [row["id"] for row in await cursor.fetchall()]
        await conn.execute(
            f"UPDATE messages SET state=?, error=NULL WHERE id IN ({marks}) AND +peer=?"
            f" AND direction='out' AND {outbox.STATE_RANK_SQL} < ?",
            [state, *keys, peer, rank],
        )
    return changed


async def unread_count(db: Database, peer: str) -> int:
    row = await db.fetchone(
        f"SELECT count(*) FROM messages WHERE peer=? AND direction='in' AND {SHOWN_SQL}"
        " AND rowid > coalesce((SELECT last_read_rowid FROM reads WHERE peer=?), 0)",
        (peer, peer),
    )
    assert row is not None
    return int(row[0])


async def get_message(db: Database, message_id: str) -> Message | None:
    row = await db.fetchone("SELECT * FROM messages WHERE id=?", (message_id,))
    return None if row is None else message_from_row(row)


async def deleted_keys(db: Database, keys: list[str]) -> set[str]:
    """Which of these messages are deleted (or were, before they came: PROTOCOL.md §17.3)."""
    rows = await db.fetch_in(
        "SELECT id FROM messages WHERE id IN ({}) AND deleted IS NOT NULL", keys
    )
    return {row["id"] for row in rows}


async def erase_copies(db: Database, keys: list[str]) -> None:
    """Forget the opened copies (version 2) of these deleted messages' texts."""
    if keys:
        async with db.transaction() as conn:
            await sessions.erase_opened(conn, keys)


async def count_messages(db: Database, peer: str | None = None) -> int:
    if peer is None:
        row = await db.fetchone("SELECT count(*) FROM messages")
    else:
        row = await db.fetchone("SELECT count(*) FROM messages WHERE peer=?", (peer,))
    assert row is not None
    return int(row[0])


async def messages_around(
    db: Database, peer: str, message_id: str, before: int, after: int
) -> tuple[list[Message], bool, bool] | None:
    """The page of `peer`'s conversation around one message, oldest first, and whether there
    are older and newer messages beyond it. None if the message is not in that conversation."""
    target = await db.fetchone(
        f"SELECT sent_at, seq, rowid FROM messages WHERE id=? AND peer=? AND {SHOWN_SQL}",
        (message_id, peer),
    )
    if target is None:
        return None
    key = (target[0], target[1], target[2])  # the conversation's order (PROTOCOL.md §13.4)
    older = await db.fetchall(
        f"SELECT * FROM messages WHERE peer=? AND {SHOWN_SQL} AND (sent_at, seq, rowid) < (?, ?, ?)"
        " ORDER BY sent_at DESC, seq DESC, rowid DESC LIMIT ?",
        (peer, *key, before + 1),
    )
    newer = await db.fetchall(
        f"SELECT * FROM messages WHERE peer=? AND {SHOWN_SQL}"
        " AND (sent_at, seq, rowid) >= (?, ?, ?) ORDER BY sent_at, seq, rowid LIMIT ?",
        (peer, *key, after + 2),
    )
    has_older, has_newer = len(older) > before, len(newer) > after + 1
    page = [message_from_row(r) for r in reversed(older[:before])] + [
        message_from_row(r) for r in newer[: after + 1]
    ]
    return page, has_older, has_newer

"""Messages and the outbox. A message and its outbox entry are written in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from flame.core.models import CONTROL_KINDS, Envelope, Inner
from flame.store.db import Database

# Control messages steer something else and are never listed (core.models.CONTROL_KINDS).
LISTED = "kind NOT IN ({})".format(",".join(f"'{kind}'" for kind in sorted(CONTROL_KINDS)))
# What the UI may see of a file offer: never its key or upload token (PROTOCOL.md §11.2).
PUBLIC_OFFER_FIELDS = ("transfer_id", "name", "size", "media_type")


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

    def to_ui(self) -> dict[str, Any]:
        view = {
            "id": self.id,
            "peer": self.peer,
            "direction": self.direction,
            "author": self.author,
            "kind": self.kind,
            "text": str(self.body.get("text", "")),
            "sent_at": self.sent_at,
            "received_at": self.received_at,
            "seq": self.seq,
            "state": self.state,
            "error": self.error,
        }
        if self.kind == "file_offer":
            view["file"] = {name: self.body.get(name) for name in PUBLIC_OFFER_FIELDS}
        return view


def _message(r: aiosqlite.Row) -> Message:
    return Message(
        r["rowid"],
        r["id"],
        r["peer"],
        r["direction"],
        r["author"],
        r["seq"],
        r["kind"],
        json.loads(r["body"]),
        r["sent_at"],
        r["received_at"],
        r["state"],
        r["error"],
    )


def message_key(author: str, envelope_id: str) -> str:
    """A message's local key. Envelope ids are random, but only their author vouches for them:
    keying by (author, id) means nobody can pre-empt alice's message by sending one of their own
    with the id they saw on the wire (it would only be deduplicated against their own)."""
    return f"{author}:{envelope_id}"


@dataclass(frozen=True, slots=True)
class Incoming:
    """An opened, verified envelope ready to store."""

    inner: Inner
    received_at: float

    @property
    def key(self) -> str:
        return message_key(self.inner.from_, self.inner.id)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A sealed message ready to store: the inner message and its envelope."""

    inner: Inner
    envelope: Envelope


async def next_sequences(db: Database, peers: list[str]) -> dict[str, int]:
    """The next sequence number of each conversation (1 for a new one)."""
    marks = ",".join("?" * len(peers))
    rows = await db.fetchall(
        f"SELECT peer, next_seq FROM sequences WHERE peer IN ({marks})", tuple(peers)
    )
    found = {row["peer"]: int(row["next_seq"]) for row in rows}
    return {peer: found.get(peer, 1) for peer in peers}


async def store_outgoing(db: Database, me: str, items: list[Outgoing], now: float) -> list[Message]:
    """Store messages, their outbox entries and the advanced sequence numbers in ONE transaction
    (one fsync for the whole group), before anything touches the network (DESIGN §6)."""
    keys = [message_key(me, i.inner.id) for i in items]
    next_seq: dict[str, int] = {}
    for item in items:
        next_seq[item.inner.to] = max(next_seq.get(item.inner.to, 0), item.inner.seq + 1)
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at, state)"
            " VALUES (?,?,?,?,?,?,?,?,'sending')",
            [
                (
                    key,
                    i.inner.to,
                    "out",
                    me,
                    i.inner.seq,
                    i.inner.kind,
                    i.inner.body.model_dump_json(),
                    i.inner.ts / 1000,
                )
                for key, i in zip(keys, items, strict=True)
            ],
        )
        await conn.executemany(
            "INSERT INTO outbox (message_id, peer, envelope, next_attempt_at, created_at)"
            " VALUES (?,?,?,?,?)",
            [
                (key, i.inner.to, i.envelope.model_dump_json(), now, now)
                for key, i in zip(keys, items, strict=True)
            ],
        )
        await conn.executemany(
            "INSERT INTO sequences (peer, next_seq) VALUES (?, ?)"
            " ON CONFLICT (peer) DO UPDATE SET next_seq = excluded.next_seq",
            list(next_seq.items()),
        )
        marks = ",".join("?" * len(items))
        async with conn.execute(f"SELECT * FROM messages WHERE id IN ({marks})", keys) as cursor:
            stored = {row["id"]: _message(row) for row in await cursor.fetchall()}
    return [stored[key] for key in keys]


async def store_incoming(db: Database, items: list[Incoming]) -> list[Message | None]:
    """Store new messages in one transaction; a known id is a duplicate and changes nothing.

    Returns, per item, the stored Message or None for a duplicate.
    """
    results: list[Message | None] = [None] * len(items)
    if not items:
        return results
    async with db.transaction() as conn:
        ids = [item.key for item in items]
        marks = ",".join("?" * len(ids))
        async with conn.execute(f"SELECT id FROM messages WHERE id IN ({marks})", ids) as cur:
            known = {row["id"] for row in await cur.fetchall()}
        fresh: list[tuple[int, Incoming]] = []
        for index, item in enumerate(items):
            if item.key not in known:
                known.add(item.key)
                fresh.append((index, item))
        await conn.executemany(
            "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at,"
            " received_at, state) VALUES (?,?,?,?,?,?,?,?,?,'received')",
            [
                (
                    i.key,
                    i.inner.from_,
                    "in",
                    i.inner.from_,
                    i.inner.seq,
                    i.inner.kind,
                    i.inner.body.model_dump_json(),
                    i.inner.ts / 1000,
                    i.received_at,
                )
                for _, i in fresh
            ],
        )
        if fresh:
            marks = ",".join("?" * len(fresh))
            async with conn.execute(
                f"SELECT * FROM messages WHERE id IN ({marks})", [i.key for _, i in fresh]
            ) as cur:
                stored = {row["id"]: _message(row) for row in await cur.fetchall()}
            for index, item in fresh:
                results[index] = stored[item.key]
    return results


async def list_messages(
    db: Database, peer: str, *, before: tuple[float, int] | None, limit: int
) -> list[Message]:
    """A page of a conversation, oldest first, ending just before the cursor (sent_at, rowid)."""
    if before is None:
        rows = await db.fetchall(
            f"SELECT * FROM messages WHERE peer=? AND {LISTED}"
            " ORDER BY sent_at DESC, rowid DESC LIMIT ?",
            (peer, limit),
        )
    else:
        rows = await db.fetchall(
            f"SELECT * FROM messages WHERE peer=? AND {LISTED} AND (sent_at, rowid) < (?, ?)"
            " ORDER BY sent_at DESC, rowid DESC LIMIT ?",
            (peer, before[0], before[1], limit),
        )
    return [_message(row) for row in reversed(rows)]


async def mark_read(db: Database, peer: str, up_to_rowid: int) -> None:
    await db.execute(
        "INSERT INTO reads (peer, last_read_rowid) VALUES (?, ?) ON CONFLICT (peer) DO UPDATE"
        " SET last_read_rowid = max(last_read_rowid, excluded.last_read_rowid)",
        (peer, up_to_rowid),
    )


async def unread_count(db: Database, peer: str) -> int:
    row = await db.fetchone(
        "SELECT count(*) FROM messages WHERE peer=? AND direction='in' AND rowid >"
        " coalesce((SELECT last_read_rowid FROM reads WHERE peer=?), 0)",
        (peer, peer),
    )
    assert row is not None
    return int(row[0])


async def get_message(db: Database, message_id: str) -> Message | None:
    row = await db.fetchone("SELECT * FROM messages WHERE id=?", (message_id,))
    return None if row is None else _message(row)


async def count_messages(db: Database, peer: str | None = None) -> int:
    if peer is None:
        row = await db.fetchone("SELECT count(*) FROM messages")
    else:
        row = await db.fetchone("SELECT count(*) FROM messages WHERE peer=?", (peer,))
    assert row is not None
    return int(row[0])


# --- the outbox --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    message_id: str
    peer: str
    envelope: Envelope
    attempts: int


async def outbox_peers(db: Database) -> list[tuple[str, float]]:
    """Each peer with pending envelopes, and when its earliest one is due."""
    rows = await db.fetchall("SELECT peer, min(next_attempt_at) AS due FROM outbox GROUP BY peer")
    return [(row["peer"], float(row["due"])) for row in rows]


async def due_entries(db: Database, peer: str, now: float, limit: int) -> list[OutboxEntry]:
    rows = await db.fetchall(
        "SELECT message_id, peer, envelope, attempts FROM outbox"
        " WHERE peer=? AND next_attempt_at <= ? ORDER BY rowid LIMIT ?",
        (peer, now, limit),
    )
    return [
        OutboxEntry(
            r["message_id"], r["peer"], Envelope.model_validate_json(r["envelope"]), r["attempts"]
        )
        for r in rows
    ]


async def mark_sent(db: Database, message_ids: list[str]) -> None:
    """The recipient's daemon acknowledged: drop from the outbox, state -> sent, in one step."""
    if not message_ids:
        return
    marks = ",".join("?" * len(message_ids))
    async with db.transaction() as conn:
        await conn.execute(f"DELETE FROM outbox WHERE message_id IN ({marks})", message_ids)
        await conn.execute(
            f"UPDATE messages SET state='sent', error=NULL WHERE id IN ({marks})"
            " AND state IN ('sending', 'failed')",
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
    """(message_id, reason): refused for good; the message shows as failed with the reason."""
    if not failures:
        return
    async with db.transaction() as conn:
        await conn.executemany(
            "DELETE FROM outbox WHERE message_id=?", [(message_id,) for message_id, _ in failures]
        )
        await conn.executemany(
            "UPDATE messages SET state='failed', error=? WHERE id=?",
            [(reason, message_id) for message_id, reason in failures],
        )

"""Groups (PROTOCOL.md §19): the operations held, the membership last computed from them, the group
messages (the text once, searchable) and each outgoing message's copies, one `messages` row per
member, whose states the outbox and receipts move. The only group SQL."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import aiosqlite

from flame.core import states
from flame.core.group_models import GroupOp
from flame.core.groups import Membership
from flame.core.models import Inner
from flame.store import outbox
from flame.store import receipts as owed_store
from flame.store.db import Database, Tx, from_row, in_marks
from flame.store.group_files import GroupFile
from flame.store.group_files import insert as insert_group_files
from flame.store.group_held import hold
from flame.store.messages import message_key
from flame.store.receipts import Owed


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    picture: str | None
    members: tuple[str, ...]
    admins: tuple[str, ...]
    heads: tuple[str, ...]
    is_member: bool
    created_at: float
    next_seq: int
    last_read_rowid: int


@dataclass(frozen=True, slots=True)
class GroupMessage:
    rowid: int
    id: str
    group_id: str
    message_id: str
    direction: str
    author: str
    seq: int
    text: str
    sent_at: float
    received_at: float | None
    envelope_id: str | None


@dataclass(frozen=True, slots=True)
class Copy:
    """An outgoing group message's copy to one member (`id`: its `messages` row), in the state
    its envelope reached."""

    group_message: str
    member: str
    id: str
    state: str
    error: str | None


@dataclass(frozen=True, slots=True)
class GroupCard:
    """A group as a list shows it: the group, its unread count and newest message, for `me`."""

    group: Group
    me: str
    unread: int
    last_message: GroupMessage | None


@dataclass(frozen=True, slots=True)
class Fanout:
    """A sealed copy of a group message (or of operations) to one member: the inner message
    and its outbox entry (with the session state, version 2)."""

    inner: Inner
    queued: outbox.Queued | None  # None: held, the member's key change pending (group_held.py)
    refused: str | None = None  # not sent: why (its daemon does not speak groups, §19)


def _group(row: aiosqlite.Row) -> Group:
    return from_row(
        Group,
        row,
        members=tuple(json.loads(row["members"])),
        admins=tuple(json.loads(row["admins"])),
        heads=tuple(json.loads(row["heads"])),
        is_member=bool(row["is_member"]),
    )


async def get_group(db: Database, group_id: str) -> Group | None:
    row = await db.fetchone("SELECT * FROM groups WHERE id=?", (group_id,))
    return None if row is None else _group(row)


async def list_groups(db: Database) -> list[Group]:
    rows = await db.fetchall("SELECT * FROM groups ORDER BY name COLLATE NOCASE, id")
    return [_group(row) for row in rows]


async def held_ops(db: Database, group_id: str) -> dict[str, GroupOp]:
    rows = await db.fetchall(
        "SELECT hash, op FROM group_ops WHERE group_id=? ORDER BY rowid", (group_id,)
    )
    return {row["hash"]: GroupOp.model_validate_json(row["op"]) for row in rows}


async def held_hashes(db: Database, group_id: str, hashes: list[str]) -> set[str]:
    if not hashes:
        return set()
    rows = await db.fetchall(
        f"SELECT hash FROM group_ops WHERE group_id=? AND hash IN ({in_marks(hashes)})",
        (group_id, *hashes),
    )
    return {row[0] for row in rows}


async def write_ops(
    conn: Tx,
    new_ops: dict[str, GroupOp],
    membership: Membership,
    me: str,
    now: float,
) -> None:
    """Inside the caller's transaction: the new operations and the membership they give."""
    await conn.executemany(
        "INSERT OR IGNORE INTO group_ops (hash, group_id, op, received_at) VALUES (?,?,?,?)",
        [(h, op.group, op.model_dump_json(), now) for h, op in new_ops.items()],
    )
    await conn.execute(
        "INSERT INTO groups (id, name, picture, members, admins, heads, is_member, created_at)"
        " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET name=excluded.name,"
        " picture=excluded.picture, members=excluded.members, admins=excluded.admins,"
        " heads=excluded.heads, is_member=excluded.is_member",
        (
            membership.group,
            membership.name,
            membership.picture,
            json.dumps(sorted(membership.members)),
            json.dumps(sorted(membership.admins)),
            json.dumps(list(membership.heads)),
            int(me in membership.members),
            now,
        ),
    )


async def save_ops(
    db: Database,
    new_ops: dict[str, GroupOp],
    membership: Membership,
    me: str,
    now: float,
    fanout: list[outbox.Queued],
    ttl_s: float,
    receipts: list[outbox.Queued] = (),  # type: ignore[assignment]
) -> None:
    """New operations, the membership and the envelopes that spread them (and the receipts of
    the envelope they came in), in ONE transaction."""
    async with db.transaction() as conn:
        await write_ops(conn, new_ops, membership, me, now)
        await outbox.enqueue(conn, [*fanout, *receipts], now, ttl_s)


@dataclass(frozen=True, slots=True)
class OutgoingText:
    """A group message of this user, sealed for each member, ready to store."""

    group_id: str
    message_id: str
    seq: int
    text: str
    copies: list[Fanout]
    file: GroupFile | None = None  # a group file's (PROTOCOL.md §19.7): its text is the caption


async def store_outgoing(
    db: Database, me: str, items: list[OutgoingText], now: float, ttl_s: float
) -> list[GroupMessage]:
    """Group messages, each one's copy to each member (a `messages` row and an outbox entry each)
    and the next sequence numbers, in ONE transaction (one fsync for all of them), before
    anything touches the network."""
    keys = [message_key(me, item.message_id) for item in items]
    copies = [
        (key, message_key(me, c.inner.id), c)
        for key, item in zip(keys, items, strict=True)
        for c in item.copies
    ]
    next_seq: dict[str, int] = {}
    for item in items:
        next_seq[item.group_id] = max(next_seq.get(item.group_id, 0), item.seq + 1)
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO group_messages (id, group_id, message_id, direction, author, seq, text,"
            " sent_at) VALUES (?,?,?,'out',?,?,?,?)",
            [
                (key, i.group_id, i.message_id, me, i.seq, i.text, now)
                for key, i in zip(keys, items, strict=True)
            ],
        )
        await conn.executemany(
            "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at, state)"
            " VALUES (?,?,'out',?,0,?,?,?,'sending')",
            [
                (ck, c.inner.to, me, c.inner.kind, c.inner.body.stored_json(), now)
                for _, ck, c in copies
            ],
        )
        await insert_group_files(conn, [i.file for i in items if i.file is not None])
        await conn.executemany(
            "INSERT INTO group_copies (group_message, member, copy_id) VALUES (?,?,?)",
            [(key, c.inner.to, ck) for key, ck, c in copies],
        )
        await outbox.enqueue(
            conn, [c.queued for _, _, c in copies if c.queued is not None], now, ttl_s
        )
        await hold(
            conn,
            [(ck, c.inner.to) for _, ck, c in copies if c.queued is None and c.refused is None],
            now,
        )
        await conn.executemany(
            "UPDATE messages SET state='failed', error=? WHERE id=?",
            [(c.refused, ck) for _, ck, c in copies if c.refused is not None],
        )
        await conn.executemany(
            "UPDATE groups SET next_seq=? WHERE id=?",
            [(seq, group_id) for group_id, seq in next_seq.items()],
        )
        async with conn.execute(
            f"SELECT * FROM group_messages WHERE id IN ({in_marks(keys)})", keys
        ) as cursor:
            stored = {row["id"]: from_row(GroupMessage, row) for row in await cursor.fetchall()}
    return [stored[key] for key in keys]


async def store_incoming(
    db: Database,
    items: list[tuple[str, GroupMessage]],
    receipts: list[Owed],
    now: float,
) -> list[GroupMessage | None]:
    """(key, message) pairs: the new ones stored, with the delivered receipts they owe
    (PROTOCOL.md §13.2), in ONE transaction; a known key is a duplicate (None)."""
    results: list[GroupMessage | None] = [None] * len(items)
    async with db.transaction() as conn:
        keys = [key for key, _ in items]
        marks = in_marks(keys)
        async with conn.execute(f"SELECT id FROM group_messages WHERE id IN ({marks})", keys) as c:
            known = {row["id"] for row in await c.fetchall()}
        for index, (key, m) in enumerate(items):
            if key in known:
                continue
            known.add(key)
            cursor = await conn.execute(
                "INSERT INTO group_messages (id, group_id, message_id, direction, author, seq,"
                " text, sent_at, received_at, envelope_id) VALUES (?,?,?,'in',?,?,?,?,?,?)",
                (
                    key,
                    m.group_id,
                    m.message_id,
                    m.author,
                    m.seq,
                    m.text,
                    m.sent_at,
                    now,
                    m.envelope_id,
                ),
            )
            results[index] = GroupMessage(
                cursor.lastrowid or 0, key, m.group_id, m.message_id, "in", m.author, m.seq,
                m.text, m.sent_at, now, m.envelope_id,
            )  # fmt: skip
        await owed_store.owe(conn, receipts, now)
    return results


async def list_messages(
    db: Database, group_id: str, *, before: tuple[float, int, int] | None, limit: int
) -> list[GroupMessage]:
    """A page of a group's conversation, oldest first, ordered as one-to-one ones are
    (PROTOCOL.md §13.4): the author's time, then the author's seq."""
    where, params = "group_id=?", [group_id]
    if before is not None:
        where += " AND (sent_at, seq, rowid) < (?, ?, ?)"
        params.extend(before)  # type: ignore[arg-type]
    rows = await db.fetchall(
        f"SELECT * FROM group_messages WHERE {where}"
        " ORDER BY sent_at DESC, seq DESC, rowid DESC LIMIT ?",
        (*params, limit),
    )
    return [from_row(GroupMessage, row) for row in reversed(rows)]


async def copies_of(db: Database, keys: list[str]) -> dict[str, list[Copy]]:
    """Each outgoing group message's copies, with the state each member's copy reached."""
    if not keys:
        return {}
    rows = await db.fetchall(
        "SELECT c.group_message, c.member, c.copy_id, m.state, m.error FROM group_copies c"
        f" JOIN messages m ON m.id = c.copy_id WHERE c.group_message IN ({in_marks(keys)})"
        " ORDER BY c.member",
        tuple(keys),
    )
    found: dict[str, list[Copy]] = {key: [] for key in keys}
    for row in rows:
        found[row[0]].append(Copy(row[0], row[1], row[2], row[3], row[4]))
    return found


def count_states(copies: list[Copy]) -> tuple[int, int]:
    """(delivered, read): how many members' copies reached each state (read counts as
    delivered too)."""
    counts = Counter(states.rank(c.state) for c in copies if c.state != "failed")
    delivered = sum(n for rank, n in counts.items() if rank >= states.rank("delivered"))
    read = sum(n for rank, n in counts.items() if rank >= states.rank("read"))
    return delivered, read


async def group_of_copy(db: Database, copy_id: str) -> str | None:
    row = await db.fetchone(
        "SELECT g.group_id FROM group_copies c JOIN group_messages g ON g.id = c.group_message"
        " WHERE c.copy_id=?",
        (copy_id,),
    )
    return None if row is None else str(row[0])


async def mark_read(db: Database, group_id: str, up_to_rowid: int) -> dict[str, list[str]]:
    """The user saw the group up to `up_to_rowid`: the envelope ids newly read, by author."""
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT author, envelope_id FROM group_messages WHERE group_id=? AND direction='in'"
            " AND rowid <= ? AND rowid > (SELECT last_read_rowid FROM groups WHERE id=?)",
            (group_id, up_to_rowid, group_id),
        ) as cursor:
            rows = await cursor.fetchall()
        await conn.execute(
            "UPDATE groups SET last_read_rowid = max(last_read_rowid, ?) WHERE id=?",
            (up_to_rowid, group_id),
        )
    by_author: dict[str, list[str]] = {}
    for row in rows:
        by_author.setdefault(row[0], []).append(row[1])
    return by_author


async def unread_count(db: Database, group_id: str) -> int:
    row = await db.fetchone(
        "SELECT count(*) FROM group_messages WHERE group_id=? AND direction='in' AND rowid >"
        " (SELECT last_read_rowid FROM groups WHERE id=?)",
        (group_id, group_id),
    )
    return 0 if row is None else int(row[0])


async def last_message(db: Database, group_id: str) -> GroupMessage | None:
    row = await db.fetchone(
        "SELECT * FROM group_messages WHERE group_id=? ORDER BY sent_at DESC, seq DESC,"
        " rowid DESC LIMIT 1",
        (group_id,),
    )
    return None if row is None else from_row(GroupMessage, row)


async def rowid_of(db: Database, group_id: str, key: str | None) -> int:
    """How far the user has seen a group: up to the message `key`, or all (None); 0 for a
    message not in it."""
    if key is None:
        row = await db.fetchone(
            "SELECT max(rowid) FROM group_messages WHERE group_id=?", (group_id,)
        )
    else:
        row = await db.fetchone(
            "SELECT rowid FROM group_messages WHERE group_id=? AND id=?", (group_id, key)
        )
    return int(row[0]) if row is not None and row[0] is not None else 0


async def search(db: Database, match: str, limit: int) -> list[GroupMessage]:
    """Group messages matching the FTS5 expression `match` (built by core.search), newest first."""
    rows = await db.fetchall(
        "SELECT g.* FROM group_messages_fts CROSS JOIN group_messages g"
        " ON g.rowid = group_messages_fts.rowid WHERE group_messages_fts MATCH ?"
        " ORDER BY group_messages_fts.rowid DESC LIMIT ?",
        (match, limit),
    )
    return [from_row(GroupMessage, row) for row in rows]

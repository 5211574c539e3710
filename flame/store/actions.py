"""Edits, deletes and reactions as the database keeps them (PROTOCOL.md §17): the versions of an
edited text, a delete that takes a text out of every table and out of the search index, each
person's reactions, and what the UI shows beside a message (the message it quotes, its reactions).
The only SQL of these tables. Writes run in the caller's transaction, with the message that
causes them (store/messages.store_outgoing and store_incoming)."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass

import aiosqlite

from flame.core.actions import MAX_EDITS, excerpt
from flame.store import files as file_store
from flame.store.db import Database, Tx, in_marks
from flame.store.messages import HIDDEN_KINDS, Message, Quote, ReactionCount
from flame.store.sessions import erase_opened

ORIGINAL = ""  # the edit id of a message's first version


@dataclass(frozen=True, slots=True)
class Target:
    """What the rules ask of the message an action names."""

    key: str
    peer: str
    author: str
    kind: str
    ts_ms: int  # the author's clock
    received_at: float | None
    deleted: str | None
    versions: int  # its versions so far (0: never edited)
    text: str

    @property
    def is_message(self) -> bool:
        """A message of the conversation, not the row of an action or a profile update."""
        return self.kind not in HIDDEN_KINDS


@dataclass(frozen=True, slots=True)
class Version:
    """One text an edited message had, and when its author wrote it (epoch s)."""

    text: str
    written_at: float


async def find_target(db: Database, key: str, peer: str) -> Target | None:
    """The message `key` of the conversation with `peer`, or None."""
    row = await db.fetchone(
        "SELECT id, peer, author, kind, sent_at, received_at, deleted, body,"
        " (SELECT count(*) FROM message_versions WHERE message_id = m.id) AS versions"
        " FROM messages m WHERE id = ? AND peer = ?",
        (key, peer),
    )
    if row is None:
        return None
    text = json.loads(row["body"]).get("text", "")
    return Target(
        row["id"],
        row["peer"],
        row["author"],
        row["kind"],
        round(row["sent_at"] * 1000),
        row["received_at"],
        row["deleted"],
        row["versions"],
        text if isinstance(text, str) else "",
    )


# --- edits (§17.2) -----------------------------------------------------------------------------


async def apply_edit(conn: Tx, target: str, edit_id: str, text: str, ts_ms: int) -> bool:
    """Keep an edit as a version of `target` and show the newest version (by the author's clock:
    an edit that comes late takes its place in the history). True when the text shown changed."""
    async with conn.execute(
        "SELECT kind, deleted, sent_at, json_extract(body, '$.text') AS text,"
        " (SELECT count(*) FROM message_versions WHERE message_id = ?) AS versions"
        " FROM messages WHERE id = ?",
        (target, target),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row["kind"] != "text" or row["deleted"] is not None:
        return False
    if row["versions"] > MAX_EDITS:
        return False
    if row["versions"] == 0:
        await conn.execute(
            "INSERT INTO message_versions (message_id, edit_id, text, ts_ms) VALUES (?,?,?,?)",
            (target, ORIGINAL, row["text"], round(row["sent_at"] * 1000)),
        )
    await conn.execute(
        "INSERT OR IGNORE INTO message_versions (message_id, edit_id, text, ts_ms)"
        " VALUES (?,?,?,?)",
        (target, edit_id, text, ts_ms),
    )
    async with conn.execute(
        "SELECT edit_id, text, ts_ms FROM message_versions WHERE message_id = ?"
        " ORDER BY ts_ms DESC, edit_id DESC LIMIT 1",
        (target,),
    ) as cursor:
        newest = await cursor.fetchone()
    assert newest is not None
    if newest["text"] == row["text"]:
        return False
    edited_at = None if newest["edit_id"] == ORIGINAL else newest["ts_ms"] / 1000
    await conn.execute(  # the search index follows (004_social.sql's trigger)
        "UPDATE messages SET body = json_set(body, '$.text', ?), edited_at = ? WHERE id = ?",
        (newest["text"], edited_at, target),
    )
    return True


async def versions(db: Database, key: str) -> list[Version]:
    """Every text the message had, oldest first; [] if it was never edited."""
    rows = await db.fetchall(
        "SELECT text, ts_ms FROM message_versions WHERE message_id = ? ORDER BY ts_ms, edit_id",
        (key,),
    )
    return [Version(row["text"], row["ts_ms"] / 1000) for row in rows]


# --- deletes (§17.3) ---------------------------------------------------------------------------


async def apply_delete(conn: Tx, target: str, peer: str, scope: str, now: float) -> bool:
    """Delete `target` for everyone (a tombstone) or for this user (not shown): its text leaves
    the message, its versions, its reactions, the search index and the copies version 2 kept
    (opened, or queued to be sent again); for everyone, whatever of it is still queued is not
    sent at all. A message deleted for everyone before it arrived gets a hidden tombstone, so
    that a copy that comes later is a duplicate. True when something changed."""
    async with conn.execute("SELECT deleted FROM messages WHERE id = ?", (target,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        if scope != "everyone":
            return False
        author = target.split(":", 1)[0]
        await conn.execute(
            "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at,"
            " received_at, state, deleted) VALUES (?,?,'in',?,0,'tombstone','{}',?,?,"
            "'received','everyone')",
            (target, peer, author, now, now),
        )
        return True
    if row["deleted"] == "me" or row["deleted"] == scope:
        return False
    async with conn.execute(
        "SELECT id FROM messages WHERE target = ? AND kind = 'edit'", (target,)
    ) as cursor:
        edits = [r["id"] for r in await cursor.fetchall()]
    await conn.execute(
        "UPDATE messages SET body = '{}', deleted = ?, edited_at = NULL WHERE id = ?",
        (scope, target),
    )
    await conn.execute("DELETE FROM message_versions WHERE message_id = ?", (target,))
    await conn.execute("DELETE FROM reactions WHERE message_id = ?", (target,))
    await erase_opened(conn, [target, *edits])
    await file_store.erase_for_message(conn, target)  # a file's bytes go after the commit
    if scope == "everyone":  # what has not left yet never will (its inner goes with its row)
        marks = in_marks([target, *edits])
        await conn.execute(f"DELETE FROM outbox WHERE message_id IN ({marks})", (target, *edits))
    return True


# --- reactions (§17.4) -------------------------------------------------------------------------


async def apply_reaction(
    conn: Tx, target: str, reactor: str, emoji: str, on: bool, ts_ms: int
) -> bool:
    """`reactor`'s `emoji` on `target`, on or off: the latest by the reactor's clock wins, so a
    copy or an older toggle changes nothing. True when it changed what is shown."""
    async with conn.execute("SELECT deleted FROM messages WHERE id = ?", (target,)) as cursor:
        row = await cursor.fetchone()
    if row is None or row["deleted"] is not None:
        return False
    async with conn.execute(
        "SELECT is_on FROM reactions WHERE message_id = ? AND reactor = ? AND emoji = ?",
        (target, reactor, emoji),
    ) as cursor:
        before = await cursor.fetchone()
    cursor = await conn.execute(
        "INSERT INTO reactions (message_id, reactor, emoji, is_on, ts_ms) VALUES (?,?,?,?,?)"
        " ON CONFLICT (message_id, reactor, emoji) DO UPDATE SET is_on = excluded.is_on,"
        " ts_ms = excluded.ts_ms WHERE excluded.ts_ms > reactions.ts_ms",
        (target, reactor, emoji, int(on), ts_ms),
    )
    updated = cursor.rowcount > 0
    await cursor.close()
    was_on = before is not None and bool(before["is_on"])
    return updated and was_on != on


async def reactions_of(db: Database, reactor: str, key: str) -> set[str]:
    """The emoji `reactor` has on the message now."""
    rows = await db.fetchall(
        "SELECT emoji FROM reactions WHERE message_id = ? AND reactor = ? AND is_on = 1",
        (key, reactor),
    )
    return {row["emoji"] for row in rows}


# --- what the UI shows beside a message ----------------------------------------------------------


async def decorate(db: Database, messages: list[Message]) -> list[Message]:
    """The messages with the message each one quotes and the reactions on it."""
    keys = [m.id for m in messages if m.deleted is None]
    counts: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for row in await db.fetch_in(
        "SELECT message_id, emoji, reactor FROM reactions WHERE message_id IN ({})"
        " AND is_on = 1 ORDER BY ts_ms, rowid",
        keys,
    ):
        counts[row["message_id"]].setdefault(row["emoji"], []).append(row["reactor"])
    refs = {ref.key for m in messages if m.deleted is None and (ref := m.reply_to) is not None}
    quoted = {
        row["id"]: row
        for row in await db.fetch_in(
            "SELECT id, peer, author, kind, body, deleted FROM messages WHERE id IN ({})",
            sorted(refs),
        )
    }
    decorated = []
    for message in messages:
        ref = message.reply_to if message.deleted is None else None
        quote = None
        if ref is not None:
            found = quoted.get(ref.key)
            if found is None or found["peer"] != message.peer:  # only this conversation's
                quote = Quote(ref.key, ref.author, "text", "", "missing")
            else:
                quote = _quote(found)
        reactions = tuple(
            ReactionCount(emoji, tuple(people))
            for emoji, people in counts.get(message.id, {}).items()
        )
        decorated.append(dataclasses.replace(message, quote=quote, reactions=reactions))
    return decorated


def _quote(row: aiosqlite.Row) -> Quote:
    kind, deleted = row["kind"], row["deleted"]
    if deleted == "everyone":
        return Quote(row["id"], row["author"], kind, "", "deleted")
    if deleted is not None or kind in HIDDEN_KINDS:
        return Quote(row["id"], row["author"], kind, "", "missing")
    body = json.loads(row["body"])
    text = body.get("text") if kind == "text" else body.get("name")
    return Quote(row["id"], row["author"], kind, excerpt(str(text or "")), "shown")

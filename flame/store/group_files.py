"""Files sent to groups (PROTOCOL.md §19.7; migration 016): which transfer a group message
carries, and who it was sent to. The transfer is an ordinary row of `transfers` (store/files.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiosqlite

from flame.store import files as file_store
from flame.store.db import Database, Tx
from flame.store.files import Transfer


@dataclass(frozen=True, slots=True)
class GroupFile:
    author: str
    transfer_id: str
    group_id: str
    group_message: str  # group_messages.id
    recipients: tuple[str, ...]  # the members at its heads but its author (§19.7)


def _group_file(row: aiosqlite.Row) -> GroupFile:
    return GroupFile(
        row["author"],
        row["transfer_id"],
        row["group_id"],
        row["group_message"],
        tuple(json.loads(row["recipients"])),
    )


async def insert(conn: Tx, rows: list[GroupFile]) -> None:
    """Within the caller's transaction; a row already known changes nothing."""
    await conn.executemany(
        "INSERT OR IGNORE INTO group_files (author, transfer_id, group_id, group_message,"
        " recipients) VALUES (?,?,?,?,?)",
        [
            (r.author, r.transfer_id, r.group_id, r.group_message, json.dumps(list(r.recipients)))
            for r in rows
        ],
    )


async def insert_incoming(db: Database, items: list[tuple[Transfer, GroupFile]]) -> None:
    """Files that members sent, recorded before their group messages (as one-to-one offers
    are): a crash in between leaves rows that the same envelope, sent again, finds."""
    if not items:
        return
    async with db.transaction() as conn:
        await conn.executemany(
            f"INSERT OR IGNORE INTO transfers ({file_store.COLUMNS}) VALUES ({file_store.MARKS})",
            [file_store.values_of(transfer) for transfer, _ in items],
        )
        await insert(conn, [row for _, row in items])


async def get(db: Database, author: str, transfer_id: str) -> GroupFile | None:
    row = await db.fetchone(
        "SELECT * FROM group_files WHERE author=? AND transfer_id=?", (author, transfer_id)
    )
    return None if row is None else _group_file(row)


async def by_message(db: Database, group_message: str) -> GroupFile | None:
    row = await db.fetchone("SELECT * FROM group_files WHERE group_message=?", (group_message,))
    return None if row is None else _group_file(row)


def transfer_key(me: str, row: GroupFile) -> tuple[str, str, str]:
    """This daemon's transfer of a group file: its own copy ('out', peer itself) or a member's."""
    if row.author == me:
        return (me, "out", row.transfer_id)
    return (row.author, "in", row.transfer_id)


async def by_messages(db: Database, me: str, keys: list[str]) -> dict[str, Transfer]:
    """The transfer each of these group messages carries (those that carry one)."""
    if not keys:
        return {}
    rows = await db.fetch_in("SELECT * FROM group_files WHERE group_message IN ({})", keys)
    found: dict[str, Transfer] = {}
    for row in rows:
        transfer = await file_store.get(db, *transfer_key(me, _group_file(row)))
        if transfer is not None:
            found[row["group_message"]] = transfer
    return found


async def fetchable(db: Database) -> list[tuple[GroupFile, Transfer]]:
    """Incoming group files still receiving: their chunks are fetched from holders (§19.7)."""
    rows = await db.fetchall(
        f"SELECT g.*, {file_store.T_COLUMNS} FROM group_files g JOIN transfers t"
        " ON t.peer = g.author AND t.direction = 'in' AND t.transfer_id = g.transfer_id"
        " WHERE t.state = 'receiving' AND NOT t.inline ORDER BY t.created_at"
    )
    return [(_group_file(row), file_store.transfer_of(row)) for row in rows]


async def add_served(db: Database, key: tuple[str, str, str], sent_bytes: int) -> None:
    """Bytes this daemon served to other members from its copy (§19.7)."""
    await db.execute(
        "UPDATE transfers SET sent_bytes = sent_bytes + ? WHERE peer=? AND direction=?"
        " AND transfer_id=?",
        (sent_bytes, *key),
    )

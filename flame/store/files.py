"""Transfers: one row per file sent or received (PROTOCOL.md §11). The bytes live in files under
<data>/files/ with generated names; this table knows which, how far each got, and its secrets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import aiosqlite

from flame.core import states
from flame.core.files import Layout
from flame.core.states import CLOSED_STATES, OPEN_STATES
from flame.store.db import Database, Tx, from_row, in_marks


@dataclass(frozen=True, slots=True)
class Transfer:
    peer: str
    direction: str
    transfer_id: str
    message_id: str | None
    name: str
    size: int
    declared_type: str
    media_type: str | None
    sha256: bytes | None
    file_key: bytes
    upload_token: bytes
    chunk_bytes: int
    stored_name: str
    state: str
    created_at: float
    # How far it got, and its attempts; a new transfer starts with none of them.
    held_bytes: int = 0
    sent_bytes: int = 0
    attempts: int = 0
    next_attempt_at: float = 0.0
    error: str | None = None
    completed_at: float | None = None
    inline: bool = False  # the content travels inside the offer (PROTOCOL.md §11.6)
    caption: str = ""  # what the sender wrote with it: the offer's `caption` (§11.2)
    # Offered without its SHA-256, streamed while the upload arrived: the hash trails the last
    # chunk (PROTOCOL.md §11.4; migration 017). `sha256` is then known only at the end.
    hash_last: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.peer, self.direction, self.transfer_id)

    @property
    def layout(self) -> Layout:
        return Layout(self.size, self.chunk_bytes)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


# The transfer states and their order are core/states.py's.
OUTGOING_OPEN_SQL = f"state IN ({states.sql_list(states.OUTGOING_OPEN)})"
FIELDS = [f.name for f in dataclasses.fields(Transfer)]
COLUMNS = ", ".join(FIELDS)
T_COLUMNS = ", ".join(f"t.{name}" for name in FIELDS)
MARKS = in_marks(FIELDS)


def transfer_of(r: aiosqlite.Row) -> Transfer:
    return from_row(Transfer, r, inline=bool(r["inline"]), hash_last=bool(r["hash_last"]))


def values_of(transfer: Transfer) -> tuple[Any, ...]:
    return tuple(getattr(transfer, name) for name in FIELDS)


async def insert(db: Database, transfer: Transfer) -> None:
    await db.execute(f"INSERT INTO transfers ({COLUMNS}) VALUES ({MARKS})", values_of(transfer))


async def insert_incoming(db: Database, transfers: list[Transfer]) -> None:
    """Offers from peers, in one transaction; an offer already known changes nothing."""
    if not transfers:
        return
    async with db.transaction() as conn:
        await conn.executemany(
            f"INSERT OR IGNORE INTO transfers ({COLUMNS}) VALUES ({MARKS})",
            [values_of(t) for t in transfers],
        )


async def get(db: Database, peer: str, direction: str, transfer_id: str) -> Transfer | None:
    row = await db.fetchone(
        f"SELECT {COLUMNS} FROM transfers WHERE peer=? AND direction=? AND transfer_id=?",
        (peer, direction, transfer_id),
    )
    return None if row is None else transfer_of(row)


async def with_peer(db: Database, peer: str, transfer_id: str) -> list[Transfer]:
    """Both directions: the UI names a transfer by peer and id only."""
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM transfers WHERE peer=? AND transfer_id=?", (peer, transfer_id)
    )
    return [transfer_of(row) for row in rows]


async def stored_names(db: Database) -> set[str]:
    rows = await db.fetchall("SELECT stored_name FROM transfers")
    return {str(row[0]) for row in rows}


async def by_messages(db: Database, message_ids: list[str]) -> dict[str, Transfer]:
    rows = await db.fetch_in(
        f"SELECT {COLUMNS} FROM transfers WHERE message_id IN ({{}})", message_ids
    )
    return {row["message_id"]: transfer_of(row) for row in rows}


async def erase_for_message(conn: Tx, message_id: str) -> None:
    """The file message was deleted (PROTOCOL.md §17.3): its transfer ends, keeping nothing of
    the file but where its bytes were (for their removal after the commit), and not its key."""
    await conn.execute(
        "UPDATE transfers SET name='', caption='', declared_type='', media_type=NULL,"
        " sha256=NULL, file_key=zeroblob(32), upload_token=zeroblob(32), state='cancelled',"
        " error='The message was deleted.' WHERE message_id=?",
        (message_id,),
    )


async def set_message(db: Database, key: tuple[str, str, str], message_id: str) -> None:
    await db.execute(
        "UPDATE transfers SET message_id=? WHERE peer=? AND direction=? AND transfer_id=?",
        (message_id, *key),
    )


async def finish_upload(
    db: Database,
    key: tuple[str, str, str],
    sha256: bytes,
    media_type: str | None,
    *,
    inline: bool,
) -> bool:
    """The browser's upload is complete and durable: the transfer waits to be offered (or, streamed
    while it arrived, goes on as it is, now with its hash)."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE transfers SET sha256=?, media_type=?, inline=?,"
            " state=CASE WHEN state='uploading' THEN 'waiting' ELSE state END"
            " WHERE peer=? AND direction=? AND transfer_id=?"
            f" AND (state='uploading' OR (hash_last AND {OUTGOING_OPEN_SQL}))",
            (sha256, media_type, inline, *key),
        )
        return cursor.rowcount > 0


async def start_streaming(db: Database, key: tuple[str, str, str]) -> bool:
    """The upload has begun and its file will be offered at once, without its hash: it waits for
    the peer to store the offer while the bytes still arrive (PROTOCOL.md §11.4)."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE transfers SET hash_last=1, state='waiting'"
            " WHERE peer=? AND direction=? AND transfer_id=? AND state='uploading'",
            key,
        )
        return cursor.rowcount > 0


async def close(
    db: Database,
    key: tuple[str, str, str],
    state: str,
    error: str | None,
    now: float,
    *,
    only_from: tuple[str, ...] = OPEN_STATES,
) -> bool:
    """Move an open transfer to a closed state (or between open ones); False if it was not in
    `only_from` (already closed: a cancel racing a completion changes nothing)."""
    marks = in_marks(only_from)
    completed_at = now if state in CLOSED_STATES else None
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE transfers SET state=?, error=?, completed_at=?"
            f" WHERE peer=? AND direction=? AND transfer_id=? AND state IN ({marks})",
            (state, error, completed_at, *key, *only_from),
        )
        return cursor.rowcount > 0


async def checkpoint(db: Database, key: tuple[str, str, str], held_bytes: int) -> None:
    """Incoming: the file holds `held_bytes` verified bytes, already fsynced."""
    await db.execute(
        "UPDATE transfers SET held_bytes=? WHERE peer=? AND direction=? AND transfer_id=?"
        " AND state='receiving'",
        (held_bytes, *key),
    )


async def complete_incoming(
    db: Database, key: tuple[str, str, str], stored_name: str, media_type: str | None, now: float
) -> bool:
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE transfers SET state='complete', held_bytes=size, stored_name=?, media_type=?,"
            " completed_at=?, error=NULL"
            " WHERE peer=? AND direction='in' AND transfer_id=? AND state='receiving'",
            (stored_name, media_type, now, key[0], key[2]),
        )
        return cursor.rowcount > 0


# --- the sender's queue ---------------------------------------------------------------------------


# The offer's message state says whether the peer has it (PROTOCOL.md §13.1): sent, delivered and
# read mean its daemon stored the offer; sending and relayed mean not yet. A failed offer still in
# the outbox is retried (relays refused it); one out of the outbox was refused for good.
PEER_HAS_OFFER = f"m.state IN ({states.sql_list(states.HELD_BY_PEER)})"
OFFER_REFUSED = "m.state='failed' AND m.id NOT IN (SELECT message_id FROM outbox)"


async def sendable(db: Database) -> list[Transfer]:
    """Outgoing streamed transfers whose offer the peer has stored, open: due now or later."""
    rows = await db.fetchall(
        f"SELECT {T_COLUMNS} FROM transfers t JOIN messages m ON m.id = t.message_id"
        f" WHERE t.direction='out' AND t.{OUTGOING_OPEN_SQL} AND NOT t.inline"
        f" AND {PEER_HAS_OFFER} ORDER BY t.created_at"
    )
    return [transfer_of(row) for row in rows]


async def complete_inline(db: Database, now: float) -> list[Transfer]:
    """Outgoing inline transfers whose offer the peer has stored are complete: the offer held
    the file, and the peer stores an offer only once its content verified (§11.6)."""
    async with db.transaction() as conn:
        async with conn.execute(
            "UPDATE transfers SET state='complete', held_bytes=size, completed_at=?, error=NULL"
            f" WHERE direction='out' AND inline AND {OUTGOING_OPEN_SQL} AND EXISTS (SELECT 1"
            " FROM messages m WHERE m.id = transfers.message_id AND m.direction='out' AND"
            f" {PEER_HAS_OFFER}) RETURNING {COLUMNS}",  # each open transfer's offer, by its id
            (now,),
        ) as cursor:
            return [transfer_of(row) for row in await cursor.fetchall()]


async def offers_on_the_way(db: Database) -> set[str]:
    """Message ids of offers the peer does not have yet (their progress wakes the sender)."""
    rows = await db.fetchall(
        "SELECT t.message_id FROM transfers t JOIN messages m ON m.id = t.message_id"
        f" WHERE t.direction='out' AND t.{OUTGOING_OPEN_SQL} AND NOT ({PEER_HAS_OFFER})"
    )
    return {str(row[0]) for row in rows}


async def refused_offers(db: Database) -> list[tuple[Transfer, str]]:
    """Outgoing transfers whose offer the peer refused for good (or that expired), with why."""
    rows = await db.fetchall(
        f"SELECT {T_COLUMNS}, m.error AS reason FROM transfers t"
        " JOIN messages m ON m.id = t.message_id"
        f" WHERE t.direction='out' AND t.{OUTGOING_OPEN_SQL} AND {OFFER_REFUSED}"
    )
    return [(transfer_of(row), str(row["reason"] or "the offer was refused")) for row in rows]


async def retry_now(db: Database, peer: str) -> None:
    """The peer came online: its waiting transfers are due at once."""
    await db.execute(
        "UPDATE transfers SET next_attempt_at=0 WHERE peer=? AND direction='out'"
        f" AND {OUTGOING_OPEN_SQL}",
        (peer,),
    )


async def record_attempt(
    db: Database,
    key: tuple[str, str, str],
    *,
    state: str,
    held_bytes: int,
    sent_bytes: int,
    attempts: int,
    next_attempt_at: float,
    error: str | None,
    now: float,
) -> bool:
    """Outgoing: the outcome of one attempt; `sent_bytes` is added to the total on the wire.
    False when the transfer was closed meanwhile (cancelled, declined)."""
    completed_at = now if state in CLOSED_STATES else None
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE transfers SET state=?, held_bytes=?, sent_bytes=sent_bytes+?, attempts=?,"
            " next_attempt_at=?, error=?, completed_at=?"
            f" WHERE peer=? AND direction=? AND transfer_id=? AND {OUTGOING_OPEN_SQL}",
            (state, held_bytes, sent_bytes, attempts, next_attempt_at, error, completed_at, *key),
        )
        return cursor.rowcount > 0


async def abandoned_uploads(db: Database) -> list[Transfer]:
    """Uploads from the browser that a restart cut short: they cannot resume."""
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM transfers WHERE state='uploading' OR (direction='out'"
        f" AND hash_last AND sha256 IS NULL AND {OUTGOING_OPEN_SQL})"
    )
    return [transfer_of(row) for row in rows]


async def plain_at_rest(db: Database) -> list[Transfer]:
    """Transfers whose file was stored in plaintext by an older version (migration 007)."""
    rows = await db.fetchall(f"SELECT {COLUMNS} FROM transfers WHERE at_rest = 'plain'")
    return [transfer_of(r) for r in rows]


async def mark_sealed(db: Database, key: tuple[str, str, str], stored_name: str) -> None:
    """The transfer's file is now sealed, under `stored_name` (a new name: the rewrite is a new
    file, renamed nowhere, so a crash never leaves a file whose form the database misstates)."""
    await db.execute(
        "UPDATE transfers SET at_rest = 'sealed', stored_name = ?"
        " WHERE peer = ? AND direction = ? AND transfer_id = ?",
        (stored_name, *key),
    )

"""Full-text search over messages and profiles (FTS5; the index is kept by 004_social.sql's
triggers). The only search SQL (PROTOCOL.md §12.3).

Speed with natural word frequencies (`make bench` measures it on a Zipf corpus): a common word
matches a large share of all messages, and ranking every match costs hundreds of milliseconds at
a million messages, while walking the index newest-first and stopping at the page size costs
well under one. So:

- `newest` (the default) walks the matches newest-first (FTS5 rowid order) and stops at `limit`;
- `relevance` ranks with BM25, but only the newest RELEVANCE_CANDIDATES matches: every match of a
  rare word (exact), the recent ones of a common word (bounded cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flame.store.db import Database
from flame.store.messages import Message, message_from_row

Order = Literal["newest", "relevance"]
RELEVANCE_CANDIDATES = 1000
HIT_START, HIT_END = "\x02", "\x03"  # snippet markers: the UI splits on them, never parses markup
SNIPPET_TOKENS = 16


@dataclass(frozen=True, slots=True)
class SearchFilters:
    peer: str | None = None
    since: float | None = None  # sent_at >= since (epoch s)
    until: float | None = None  # sent_at < until
    order: Order = "newest"
    limit: int = 30


@dataclass(frozen=True, slots=True)
class MessageHit:
    message: Message
    snippet: str  # the matching part of the text, hits between HIT_START and HIT_END


def _filters(filters: SearchFilters) -> tuple[str, list[object]]:
    sql, params = "", list[object]()
    if filters.peer is not None:
        sql += " AND m.peer = ?"
        params.append(filters.peer)
    if filters.since is not None:
        sql += " AND m.sent_at >= ?"
        params.append(filters.since)
    if filters.until is not None:
        sql += " AND m.sent_at < ?"
        params.append(filters.until)
    return sql, params


# CROSS JOIN keeps the index as the outer loop: matches come newest-first and the walk stops at the
# LIMIT, whatever filters apply (SQLite could otherwise scan a peer's messages and sort).
_FROM = (
    " FROM messages_fts CROSS JOIN messages m ON m.rowid = messages_fts.rowid"
    " WHERE messages_fts MATCH ?"
)


async def search_messages(db: Database, match: str, filters: SearchFilters) -> list[MessageHit]:
    """Messages matching the FTS5 expression `match` (built by core.search, never raw input)."""
    where, params = _filters(filters)
    snippet = f"snippet(messages_fts, 0, '{HIT_START}', '{HIT_END}', '…', {SNIPPET_TOKENS}) AS snip"
    if filters.order == "newest":
        rows = await db.fetchall(
            f"SELECT m.*, {snippet}{_FROM}{where} ORDER BY messages_fts.rowid DESC LIMIT ?",
            (match, *params, filters.limit),
            slow=True,  # may take milliseconds over a large store: the loop goes on meanwhile
        )
    else:
        floor = await db.fetchone(
            f"SELECT messages_fts.rowid{_FROM}{where} ORDER BY messages_fts.rowid DESC LIMIT 1 OFFSET ?",
            (match, *params, RELEVANCE_CANDIDATES - 1),
            slow=True,
        )
        bound = 0 if floor is None else int(floor[0])
        rows = await db.fetchall(
            f"SELECT m.*, {snippet}{_FROM} AND messages_fts.rowid >= ?{where}"
            " ORDER BY bm25(messages_fts), messages_fts.rowid DESC LIMIT ?",
            (match, bound, *params, filters.limit),
            slow=True,
        )
    return [MessageHit(message_from_row(row), str(row["snip"] or "")) for row in rows]


@dataclass(frozen=True, slots=True)
class PersonHit:
    username: str
    display_name: str
    position: str
    location: str


async def search_people(db: Database, match: str, contains: str, limit: int) -> list[PersonHit]:
    """Profiles matching `match` (any field), then contacts whose username contains `contains`
    (people who never published a profile), best first."""
    rows = await db.fetchall(
        "SELECT p.username, p.display_name, p.position, p.location FROM profiles_fts"
        " JOIN profiles p ON p.id = profiles_fts.rowid WHERE profiles_fts MATCH ?"
        " ORDER BY rank LIMIT ?",
        (match, limit),
    )
    found = [PersonHit(r[0], r[1], r[2], r[3]) for r in rows]
    seen = {hit.username for hit in found}
    if contains and len(found) < limit:
        pattern = "%" + contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await db.fetchall(
            "SELECT username FROM contacts WHERE username LIKE ? ESCAPE '\\'"
            " ORDER BY username LIMIT ?",
            (pattern, limit),
        )
        for row in rows:
            if row[0] not in seen and len(found) < limit:
                seen.add(row[0])
                found.append(PersonHit(row[0], "", "", ""))
    return found

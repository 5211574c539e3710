"""Search, the daemon's side (PROTOCOL.md §12.3): one query over people and messages, for the UI.

Search is local: it reads this daemon's database and nothing else, and nothing leaves the machine.
The query language and its escaping are core/search.py's; the SQL and the ordering store/search.py's.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from flame import status
from flame.blocks import blocked_names
from flame.core.search import parse_query
from flame.errors import BadRequest
from flame.parts import Parts
from flame.people import summary
from flame.store import contacts as contact_store
from flame.store import profiles as profile_store
from flame.store.search import HIT_END, HIT_START, SearchFilters, search_messages, search_people

log = logging.getLogger("flame.search")
PEOPLE_LIMIT = 10


def snippet_parts(snippet: str) -> list[dict[str, Any]]:
    """'a \\x02hit\\x03 b' -> [{text: 'a ', hit: false}, {text: 'hit', hit: true}, ...]: the UI
    highlights with elements it builds, never by parsing markup."""
    segments: list[dict[str, Any]] = []
    for index, piece in enumerate(snippet.split(HIT_START)):
        hit, _, rest = piece.partition(HIT_END) if index > 0 else ("", "", piece)
        if hit:
            segments.append({"text": hit, "hit": True})
        if rest:
            segments.append({"text": rest, "hit": False})
    return segments


async def search(parts: Parts, text: str, filters: SearchFilters) -> dict[str, Any]:
    query = parse_query(text)
    result: dict[str, Any] = {"query": text, "order": filters.order, "people": [], "messages": []}
    if query.is_empty:
        return result
    try:
        people = await search_people(
            parts.db, query.match(prefix_all=True), text.strip(), PEOPLE_LIMIT
        )
        hits = await search_messages(parts.db, query.match(), filters)
    except sqlite3.OperationalError as exc:  # core/search.py quotes everything: not expected
        log.warning("search %r failed: %s", text, exc)
        raise BadRequest(
            "This search could not be run; try other words.", code="bad_search"
        ) from exc
    blocked = await blocked_names(parts)
    names = [p.username for p in people]
    profiles = await profile_store.profiles_of(parts.db, names)
    statuses = {c.username: c.status for c in await contact_store.list_contacts(parts.db)}
    for person in people:
        result["people"].append(
            {
                "username": person.username,
                **summary(person.username, profiles.get(person.username), blocked),
                "location": person.location,
                "is_me": person.username == parts.me,
                "status": status.current(parts)
                if person.username == parts.me
                else statuses.get(person.username, "offline"),
            }
        )
    for hit in hits:
        result["messages"].append(
            {"message": hit.message.to_ui(), "snippet": snippet_parts(hit.snippet)}
        )
    return result

"""Search (PROTOCOL.md §12.3): one query over people and messages, for the UI.

Search is local: it reads this daemon's database and nothing else, and nothing leaves the machine.
The query language and its escaping are core/search.py's; the SQL and the ordering store/search.py's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flame.core.search import parse_query
from flame.errors import BadRequest
from flame.services.context import Context
from flame.services.people import People, Person
from flame.store.db import OperationalError
from flame.store.search import MessageHit, SearchFilters, search_messages, search_people

log = logging.getLogger("flame.search")
PEOPLE_LIMIT = 10


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    order: str
    people: list[Person] = field(default_factory=list)
    messages: list[MessageHit] = field(default_factory=list)


@dataclass(eq=False)
class Search:
    ctx: Context
    people: People

    async def search(self, text: str, filters: SearchFilters) -> SearchResult:
        query = parse_query(text)
        if query.is_empty:
            return SearchResult(text, filters.order)
        db = self.ctx.db
        try:
            found = await search_people(
                db, query.match(prefix_all=True), text.strip(), PEOPLE_LIMIT
            )
            hits = await search_messages(db, query.match(), filters)
        except OperationalError as exc:  # core/search.py quotes everything: not expected
            log.warning("search %r failed: %s", text, exc)
            raise BadRequest(
                "This search could not be run; try other words.", code="bad_search"
            ) from exc
        people = await self.people.people([p.username for p in found])
        return SearchResult(text, filters.order, people, hits)

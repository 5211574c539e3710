"""The search box's language, turned into a safe SQLite FTS5 query (PROTOCOL.md §12.3). No I/O.

What a person types is never passed to FTS5 as syntax: every word becomes a quoted FTS5 string, so
`AND`, `NEAR(`, `col:`, `^`, parentheses and stray quotes are plain text. What the box offers:

    budget review        messages with both words (any order)
    "board meeting"      the words next to each other, in this order
    budg*                words starting with "budg" (at least two letters before the star)

Anything else is a word; control characters are spaces. Words are matched without case or
accents (FTS5 unicode61 tokenizer).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from flame.errors import BadRequest

MAX_QUERY_CHARS = 256
MAX_TERMS = 8
MIN_PREFIX_CHARS = 2


@dataclass(frozen=True, slots=True)
class Term:
    text: str
    is_phrase: bool = False
    is_prefix: bool = False

    def fts(self, prefix: bool = False) -> str:
        quoted = '"' + self.text.replace('"', '""') + '"'
        return quoted + "*" if self.is_prefix or (prefix and _prefixable(self.text)) else quoted


@dataclass(frozen=True, slots=True)
class Query:
    terms: tuple[Term, ...]

    @property
    def is_empty(self) -> bool:
        return not self.terms

    def match(self, *, prefix_all: bool = False) -> str:
        """The FTS5 MATCH expression: every term must occur (implicit AND). `prefix_all` makes
        every word a prefix (for names: "ali" finds alice)."""
        return " ".join(term.fts(prefix_all and not term.is_phrase) for term in self.terms)


def _has_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _prefixable(text: str) -> bool:
    return sum(ch.isalnum() for ch in text) >= MIN_PREFIX_CHARS


def parse_query(text: str) -> Query:
    """Parse the search box. Never fails on content: only on length (400 `search_too_long`)."""
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequest(
            f"The search is longer than {MAX_QUERY_CHARS} characters; shorten it.",
            code="search_too_long",
        )
    # Control characters end an FTS5 string early (NUL) and lone surrogates cannot be encoded:
    # neither is something a person searches for.
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)
    terms: list[Term] = []
    index = 0
    while index < len(text) and len(terms) < MAX_TERMS:
        ch = text[index]
        if ch.isspace():
            index += 1
            continue
        if ch == '"':
            end = text.find('"', index + 1)
            end = len(text) if end == -1 else end  # an unbalanced quote runs to the end
            phrase = " ".join(text[index + 1 : end].split())
            if _has_word(phrase):
                terms.append(Term(phrase, is_phrase=True))
            index = end + 1
            continue
        end = index
        while end < len(text) and not text[end].isspace() and text[end] != '"':
            end += 1
        word = text[index:end]
        index = end
        core = word.rstrip("*")
        if _has_word(core):
            terms.append(Term(core, is_prefix=core != word and _prefixable(core)))
    return Query(tuple(terms))

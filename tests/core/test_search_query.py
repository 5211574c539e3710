"""The search box's language (PROTOCOL.md §12.3): everything is quoted for FTS5; only words,
phrases and prefixes mean anything."""

from __future__ import annotations

import pytest

from flame.core.search import MAX_TERMS, parse_query
from flame.errors import BadRequest


def test_the_query_language_quotes_everything() -> None:
    assert parse_query("budget review").match() == '"budget" "review"'
    assert parse_query('"board meeting" q3').match() == '"board meeting" "q3"'
    assert parse_query("budg*").match() == '"budg"*'
    assert parse_query("b*").match() == '"b"'  # one letter is too short to be a prefix
    assert parse_query('say "hi').match() == '"say" "hi"'  # an unbalanced quote runs to the end
    assert parse_query('x"y').match() == '"x" "y"'
    assert parse_query("NEAR(a b)").match() == '"NEAR(a" "b)"'
    assert parse_query('a""b').match() == '"a" "b"'
    assert parse_query('He said ""').match() == '"He" "said"'
    assert parse_query("( ) * - ^").is_empty
    assert parse_query("ali").match(prefix_all=True) == '"ali"*'
    assert len(parse_query("w " * 50).terms) == MAX_TERMS
    with pytest.raises(BadRequest, match="longer"):
        parse_query("x" * 257)

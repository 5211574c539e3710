"""The rules of replies, edits, deletes, reactions and typing (PROTOCOL.md §17), as pure
functions: who may, how late, what an emoji is, and typing's pace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flame.core import actions
from flame.core.actions import Ref
from flame.core.envelope import new_message_id
from flame.errors import RequestError

ID = new_message_id()


def code_of(call: object, *args: object) -> str:
    try:
        call(*args)  # type: ignore[operator]
    except RequestError as exc:
        return exc.code
    return "ok"


def test_only_the_author_edits_or_deletes_and_that_refusal_is_a_403() -> None:
    actions.check_author(Ref(id=ID, author="alice"), "alice")
    with pytest.raises(RequestError) as refused:
        actions.check_author(Ref(id=ID, author="alice"), "bob")
    assert (refused.value.code, refused.value.status) == ("not_author", 403)


def test_a_reference_names_a_message_of_the_two_people_only() -> None:
    for author in ("alice", "bob"):
        actions.check_in_conversation(Ref(id=ID, author=author), "alice", "bob")
    assert code_of(actions.check_in_conversation, Ref(id=ID, author="carol"), "alice", "bob") == (
        "unknown_message"
    )


def test_a_reference_is_a_sixteen_byte_envelope_id() -> None:
    for bad in ("", "short", ID + "A", "!" * 22):
        with pytest.raises(ValueError):
            Ref.model_validate({"id": bad, "author": "alice"})


def test_typing_goes_at_most_every_three_seconds_and_stops_only_what_is_shown() -> None:
    assert actions.typing_due(True, None, 100.0)
    assert not actions.typing_due(True, 100.0, 102.9)
    assert actions.typing_due(True, 100.0, 103.0)
    assert not actions.typing_due(False, None, 100.0)  # nothing said: nothing to take back
    assert actions.typing_due(False, 100.0, 106.0)
    assert not actions.typing_due(False, 100.0, 106.1)  # the indicator went out by itself


def test_a_typing_notice_more_than_30_s_from_the_receivers_clock_is_stale() -> None:
    now = 1_700_000_000.0
    assert not actions.is_stale_typing(int(now * 1000) - 30_000, now)
    assert actions.is_stale_typing(int(now * 1000) - 30_001, now)
    assert actions.is_stale_typing(int(now * 1000) + 30_001, now)


WORDS = st.characters(categories=["L", "Nd", "Zs", "P"], exclude_characters="\u2139\u203c\u2049")


@given(st.text(WORDS, max_size=4))
def test_letters_digits_spaces_and_punctuation_are_never_an_emoji(text: str) -> None:
    """(U+2139, U+203C and U+2049 are a letter and punctuation that are emoji too.)"""
    assert not actions.is_emoji(text)


def test_joined_emoji_are_one_but_two_in_a_row_are_not() -> None:
    family = "👩\u200d👩\u200d👧\u200d👦"
    assert actions.is_emoji(family)
    assert not actions.is_emoji(family + "👍")
    too_long = "\u200d".join(["👍"] * (actions.MAX_ELEMENTS + 1))
    assert not actions.is_emoji(too_long)


def test_an_excerpt_is_one_line_of_at_most_200_characters() -> None:
    assert actions.excerpt("a\n  b\tc") == "a b c"
    long = actions.excerpt("x" * 500)
    assert len(long) == actions.EXCERPT_CHARS and long.endswith("…")

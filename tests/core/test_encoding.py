"""Encodings (PROTOCOL.md §2): canonical JSON and strict base64url."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame.core.encoding import b64d, b64e, canonical_json, parse_json_object
from flame.errors import BadRequest

FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
B64_ALPHABET = set(string.ascii_letters + string.digits + "-_")

scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
no_space_text = st.text(alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")))
no_space_values = st.recursive(
    st.none() | st.booleans() | st.integers() | no_space_text,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(no_space_text, children, max_size=5)
    ),
    max_leaves=25,
)


def reversed_insertion(value: Any) -> Any:
    """The same value with every object's keys inserted in the opposite order."""
    if isinstance(value, dict):
        return {key: reversed_insertion(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_insertion(item) for item in value]
    return value


def assert_keys_sorted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert keys == sorted(keys)
    return dict(pairs)


# --- canonical JSON ------------------------------------------------------------------------


@FAST
@given(json_values)
def test_canonical_json_decodes_to_the_same_value(value: Any) -> None:
    assert json.loads(canonical_json(value)) == value


@FAST
@given(json_values)
def test_canonical_json_ignores_key_insertion_order(value: Any) -> None:
    assert canonical_json(reversed_insertion(value)) == canonical_json(value)


@FAST
@given(json_values)
def test_canonical_json_sorts_keys_at_every_level(value: Any) -> None:
    json.loads(canonical_json(value), object_pairs_hook=assert_keys_sorted)


@FAST
@given(no_space_values)
def test_canonical_json_has_no_whitespace(value: Any) -> None:
    encoded = canonical_json(value)
    assert not set(encoded.decode()) & set(" \t\r\n")


@FAST
@given(json_values)
def test_canonical_json_is_a_fixed_point(value: Any) -> None:
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded


def test_canonical_json_known_answer() -> None:
    value = {"b": 1, "a": [True, None, "é\n"], "A": {"z": -5, "y": ""}}
    assert canonical_json(value) == b'{"A":{"y":"","z":-5},"a":[true,null,"\xc3\xa9\\n"],"b":1}'


@pytest.mark.parametrize(
    "text,encoded",
    [
        ('"', '"\\""'),
        ("\\", '"\\\\"'),
        ("\b\t\n\f\r", '"\\b\\t\\n\\f\\r"'),
        ("\x00\x1f", '"\\u0000\\u001f"'),
        ("/", '"/"'),
        ("\x7f", '"\x7f"'),
        ("\u2028", '"\u2028"'),
        ("é🔥", '"é🔥"'),
    ],
)
def test_canonical_json_escapes_exactly_as_documented(text: str, encoded: str) -> None:
    """PROTOCOL.md §2.2 lists the escapes; everything else is literal UTF-8."""
    assert canonical_json(text) == encoded.encode()


@pytest.mark.parametrize(
    "value",
    [1.0, float("nan"), [1, 2.5], {"a": {"b": 0.0}}, {1: "x"}, b"bytes", (1, 2), {"a": {1, 2}}],
    ids=repr,
)
def test_canonical_json_refuses_what_has_no_single_form(value: Any) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_canonical_json_refuses_every_float(value: float) -> None:
    with pytest.raises(TypeError):
        canonical_json({"x": [value]})


# --- base64url -----------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=200))
def test_b64_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert b64d(text) == data
    assert b64d(text, length=len(data)) == data
    assert set(text) <= B64_ALPHABET
    assert len(text) == -(-len(data) * 4 // 3)


def test_b64_known_answers() -> None:
    assert b64e(b"") == ""
    assert b64e(b"\xfb\xff") == "-_8"
    assert b64e(b"\x01") == "AQ"
    assert b64d("-_8") == b"\xfb\xff"


@FAST
@given(st.binary(min_size=1, max_size=64).filter(lambda d: len(d) % 3 != 0))
def test_b64_refuses_padding(data: bytes) -> None:
    text = b64e(data)
    padded = text + "=" * (-len(text) % 4)
    with pytest.raises(BadRequest):
        b64d(padded)


@FAST
@given(st.binary(min_size=1, max_size=64).filter(lambda d: len(d) % 3 != 0))
def test_b64_refuses_nonzero_unused_bits(data: bytes) -> None:
    """The last character of a partial group has unused low bits; setting one must be refused."""
    text = b64e(data)
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    index = alphabet.index(text[-1])
    assert index % 4 == 0  # at least two unused bits, all zero in the canonical form
    with pytest.raises(BadRequest):
        b64d(text[:-1] + alphabet[index | 1])


@pytest.mark.parametrize(
    "text",
    [
        "AR",
        "AQ=",
        "AQ==",
        "A",
        "AAAAA",
        "+w",
        "/w",
        "AQ ",
        " AQ",
        "A Q",
        "AQ\n",
        "é",
        "AQ!",
        "A\x00",
    ],
)
def test_b64_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(BadRequest):
        b64d(text)


@pytest.mark.parametrize("value", [None, 5, b"AQ"], ids=repr)
def test_b64_refuses_non_strings(value: Any) -> None:
    with pytest.raises(BadRequest):
        b64d(value)


@FAST
@given(st.binary(max_size=40), st.integers(0, 48))
def test_b64_enforces_the_length(data: bytes, length: int) -> None:
    if length == len(data):
        assert b64d(b64e(data), length=length) == data
    else:
        with pytest.raises(BadRequest):
            b64d(b64e(data), length=length)


# --- untrusted JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"[]", b"1", b'"x"', b"null", b"{", b"\xff", b"{'a': 1}"])
def test_parse_json_object_refuses_anything_but_an_object(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json_object(raw)


def test_parse_json_object_accepts_an_object() -> None:
    assert parse_json_object(b' {"a": [1]} ') == {"a": [1]}


def nested(levels: int, *, filler: str = "") -> bytes:
    """An object whose arrays reach `levels` levels in all, the object included; `filler` is a
    string beside the innermost array (brackets in strings count for nothing)."""
    inner = "[" * (levels - 1) + "]" * (levels - 1)
    return ('{"a": ' + inner + ', "s": "' + filler + '"}').encode()


@pytest.mark.parametrize("filler", ["", "[{" * 40], ids=["plain", "brackets_in_a_string"])
def test_parse_json_object_takes_32_levels_and_refuses_33(filler: str) -> None:
    """PROTOCOL.md §1.3: at most 32 levels, the outermost object included, whatever a string
    holds; a text with few brackets is let through without walking it, one with many is walked."""
    assert parse_json_object(nested(32, filler=filler))["s"] == filler
    with pytest.raises(BadRequest, match="deeper than 32 levels"):
        parse_json_object(nested(33, filler=filler))


def test_parse_json_object_refuses_a_repeated_key_at_any_depth() -> None:
    with pytest.raises(BadRequest, match="repeats a key"):
        parse_json_object(b'{"a": {"b": 1, "b": 2}}')
    with pytest.raises(BadRequest, match="repeats a key"):
        parse_json_object(b'{"a": 1, "a": 1}')

"""Byte and JSON encodings shared by every signed or sealed structure (PROTOCOL.md §2). No I/O."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from flame.errors import BadRequest


def b64e(data: bytes) -> str:
    """base64url without padding: the only byte encoding on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode strict base64url (no padding, canonical); optionally require a byte length."""
    if not isinstance(text, str) or "=" in text or not text.isascii():
        raise BadRequest(f"{what} is not base64url text")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{what} is not base64url text") from exc
    if b64e(data) != text:
        raise BadRequest(f"{what} is not canonical base64url")
    if length is not None and len(data) != length:
        raise BadRequest(f"{what} must be {length} bytes, not {len(data)}")
    return data


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: UTF-8, keys sorted by code point, no insignificant whitespace.

    Only objects, arrays, strings, integers, booleans and null are allowed: floats have no single
    textual form, so signed structures never carry them.
    """
    _check_canonical(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check_canonical(value: Any) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, list):
        for item in value:
            _check_canonical(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("canonical JSON object keys must be strings")
            _check_canonical(item)
        return
    raise TypeError(f"canonical JSON cannot encode {type(value).__name__}")


# Bounds of untrusted JSON (PROTOCOL.md §1.3): no Flame body nests deeper than a few levels, and
# every integer of the protocol fits in a signed 64-bit integer (SQLite's INTEGER).
JSON_DEPTH_MAX = 32
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_INT_DIGITS_MAX = len(str(INT_MAX))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _Refused(ValueError):
    """Raised by the parser's hooks; becomes BadRequest."""


def _parse_int(text: str) -> int:
    # Before int(): a 5,000-digit integer costs time and trips Python's digit limit.
    if len(text.lstrip("-")) > _INT_DIGITS_MAX:
        raise _Refused("an integer is out of range")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise _Refused("an integer is out of range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number is out of range")
    return value


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _Refused("an object repeats a key")
    return value


def _check_depth(text: str, value: dict[str, Any]) -> None:
    """At most JSON_DEPTH_MAX levels of objects and arrays, the top one included. Each level opens
    with a bracket, so a text with no more brackets than that (counted at C speed, those inside
    strings too) cannot nest deeper; others are walked level by level, without recursion, and at
    C speed over arrays of scalars."""
    if text.count("{") + text.count("[") <= JSON_DEPTH_MAX:
        return
    level: list[Any] = [value]
    for depth in range(1, JSON_DEPTH_MAX + 1):
        deeper: list[Any] = []
        for item in level:
            children = list(item.values()) if isinstance(item, dict) else item
            kinds = set(map(type, children))
            if dict in kinds or list in kinds:
                deeper.extend(c for c in children if isinstance(c, dict | list))
        if not deeper:
            return
        if depth == JSON_DEPTH_MAX:
            break
        level = deeper
    raise _Refused(f"it nests deeper than {JSON_DEPTH_MAX} levels")


def _check_unicode(value: Any) -> None:
    """No lone surrogates in any key or string: no UTF-8 carries them, so they would fail on
    the way out. Only `\\uD800`-`\\uDFFF` escapes can make one (the text is strict UTF-8), so
    this walk runs only for a text that has such an escape."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused("a string is not valid Unicode") from None
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# Built once: `json.loads` with hooks would build a decoder (and its scanner) per call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_constant=_parse_constant,
    parse_int=_parse_int,
    parse_float=_parse_float,
)


def parse_json_object(raw: bytes, *, what: str = "body") -> dict[str, Any]:
    """Parse untrusted JSON that must be an object; errors become BadRequest.

    The one parser of untrusted JSON (PROTOCOL.md §1.3): strict UTF-8, no repeated keys, no NaN or
    Infinity, integers within 64 bits, at most JSON_DEPTH_MAX levels, no lone surrogates.
    """
    try:
        text = raw.decode("utf-8")
        value = _DECODER.decode(text)
        if isinstance(value, dict):
            _check_depth(text, value)
            if _SURROGATE_ESCAPE.search(text):
                _check_unicode(value)
    except _Refused as exc:
        raise BadRequest(f"{what} is not acceptable JSON: {exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        # RecursionError: nesting deeper than the interpreter's stack, long before our own bound.
        raise BadRequest(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value

"""Byte and JSON encodings shared by every signed or sealed structure (PROTOCOL.md §2). No I/O."""

from __future__ import annotations

import base64
import binascii
import json
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


def parse_json_object(raw: bytes, *, what: str = "body") -> dict[str, Any]:
    """Parse untrusted JSON that must be an object; errors become BadRequest."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value

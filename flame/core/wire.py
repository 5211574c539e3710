"""The base of every wire model and the field types the models share: strict parsing, a
username, a bounded base64url value, one line of visible text, and fields that are absent rather
than null. No I/O here; no model of a message kind (core/models.py, core/actions.py, core/groups.py
build on it)."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")


def check_username(name: str) -> str:
    if not USERNAME_RE.fullmatch(name):
        raise ValueError(
            "a username is 2-32 characters: a lowercase letter, then lowercase letters, digits, "
            "'_', '.' or '-'"
        )
    return name


Username = Annotated[
    str,
    AfterValidator(check_username),
    WithJsonSchema({"type": "string", "pattern": USERNAME_RE.pattern}),
]
B64 = Annotated[str, Field(max_length=200)]
# Bidirectional controls: they reorder what is shown after them ("Alice\u202eecilA").
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
INVISIBLE = "without invisible formatting characters (such as U+202E, which reverses what follows)"


def _single_line(value: str) -> str:
    """One line of visible text: a name (or position, location) with a bidi control or another
    invisible format character (Unicode's Cf: zero-width spaces and joiners, the byte order mark,
    soft hyphens, tags) could look exactly like another one (PROTOCOL.md §12.1)."""
    categories = {unicodedata.category(ch) for ch in value}
    if categories & {"Cc", "Zl", "Zp"}:
        raise ValueError("must be one line of text, without control characters")
    if "Cf" in categories:
        raise ValueError(f"must be text {INVISIBLE}")
    return value


Line = Annotated[str, AfterValidator(_single_line)]


def without_none(dumped: dict[str, Any], key: str) -> dict[str, Any]:
    """A field that is absent, never null, on the wire (PROTOCOL.md §11.6, §14.4, §17.1)."""
    if dumped.get(key, "") is None:
        del dumped[key]
    return dumped


class Wire(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    def stored_json(self) -> str:
        """The body as the message store keeps it."""
        return self.model_dump_json()

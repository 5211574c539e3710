"""The base of every wire model: strict parsing, usernames, bounded base64url strings, and fields
that are absent rather than null. No I/O here (core/models.py and core/actions.py build on it)."""

from __future__ import annotations

import re
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

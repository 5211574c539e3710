"""The wire models of groups (PROTOCOL.md §19): a signed membership operation and the bodies of the
two group inner kinds, `group_ops` and `group_text`. The rules over them are core/groups.py.

No I/O here. The bounds here are loose on purpose: the limits a peer is told about (100 members,
a 64-character name) are checked by core/groups.check_form, with their own codes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flame.core.wire import B64, Line, Username, Wire

OP_KINDS = ("create", "add", "remove", "promote", "rename", "picture", "leave")
OpKind = Literal["create", "add", "remove", "promote", "rename", "picture", "leave"]
# A picture is an image of at most 64 KiB (PROTOCOL.md §12.1's avatar rule), as base64url.
PICTURE_B64_MAX = (64 * 1024 * 4 + 2) // 3


class GroupOp(Wire):
    """One membership operation, signed by its author's Ed25519 identity key (PROTOCOL.md §19.2).
    Every field is always present; `sig` covers all the others."""

    group: B64
    op: OpKind
    author: Username
    parents: list[B64] = Field(max_length=64)
    ts: int = Field(ge=0, le=8_640_000_000_000_000)
    members: list[Username] = Field(max_length=1000)
    name: Line | None = Field(max_length=1000)
    picture: str | None = Field(max_length=PICTURE_B64_MAX)
    sig: B64


class GroupOpsBody(Wire):
    """`group_ops`: operations of one group, parents before children (PROTOCOL.md §19.4)."""

    group: B64
    ops: list[GroupOp] = Field(min_length=1, max_length=1000)


class GroupTextBody(Wire):
    """`group_text`: a message to a group (PROTOCOL.md §19.5). `id` is the message's id, the same
    in every member's copy; `seq` the author's sequence number in this group; `heads` the
    operations the author's membership was at when sending."""

    group: B64
    id: B64
    seq: int = Field(ge=1, le=2**53 - 1)
    heads: list[B64] = Field(min_length=1, max_length=64)
    text: str = Field(max_length=100_000)

    def stored_json(self) -> str:
        """A sender's per-member copy keeps no text: the group message holds it once."""
        return self.model_dump_json(exclude={"text"})


GROUP_KIND_BODIES: dict[str, type[Wire]] = {
    "group_ops": GroupOpsBody,
    "group_text": GroupTextBody,
}
# The kinds of a group message's per-member copies (PROTOCOL.md §19.5, §19.7): each a `messages`
# row, hidden from one-to-one views, whose state the outbox and the member's receipts move.
GROUP_COPY_KINDS = ("group_text", "group_file")

"""The remote API's hello (PROTOCOL.md §7.1): the full answer, which names the user, goes only to a
member this daemon pinned whose request it verified; anyone else learns that a Flame daemon
listens there, and whether it is locked, and nothing more. No I/O here.
"""

from __future__ import annotations

from flame.core.models import B64, Username, Wire

FEATURES = [
    "envelopes",
    "receipts",
    "relay",
    "profiles",
    "files",
    "files-stream",  # a file offered without its hash, which trails its chunks: PROTOCOL.md §11.4
    "replies",  # replies, edits, reactions and typing: PROTOCOL.md §17
    "edits",
    "reactions",
    "typing",
    "groups",  # PROTOCOL.md §19
]


class Hello(Wire):
    """To a member whose signed (or MAC'd) request verified: who answers, and what it speaks.
    `locked` is always false here: a locked daemon, or one appearing offline, tells no one who it
    is."""

    username: Username
    identity_key: B64
    versions: list[int]
    features: list[str]
    locked: bool


class PublicHello(Wire):
    """To anyone else (unsigned, a signature that does not verify, a stranger, a blocked user):
    whether it is locked, which every signed route shows anyway (503 `locked` before any check)."""

    locked: bool

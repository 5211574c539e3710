"""The directory's changes after a cursor (PROTOCOL.md §5.4, §5.5), on the wire. No I/O here."""

from __future__ import annotations

from pydantic import Field

from flame.core.models import DirectoryEntry, Wire


class DirectoryChanges(Wire):
    """What changed at the directory after cursor `since`, up to `cursor` (PROTOCOL.md §5.4):
    the current entry of every user changed in between; `since` 0 is the whole listing. The
    answer of `GET /dir/v1/users?since=` and each frame of the subscription."""

    since: int = Field(ge=0)
    cursor: int = Field(ge=0)
    users: list[DirectoryEntry]

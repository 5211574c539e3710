"""The directory's store interface (users, invites, presence, prekeys, the change cursor, the key
log) and the
rules both implementations share: `sqlite_store` (the embedded file, the default) and `pg_store`
(PostgreSQL through asyncpg, for several processes). The SQL lives in those two modules only.

Every change to what the listing shows (an enrollment, a rekey, a presence that appears, changes
or goes) takes the next number of one counter, the **head**, and stamps it on the user it changed,
in the same transaction (PROTOCOL.md §5.4); one transaction is one number. A reader that holds
cursor `c` asks for the users stamped above `c` and gets their current entries: users are never
deleted, so an entry is all a change needs to say.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flame.core.encoding import b64e
from flame.core.keylog import KeyLogEntry
from flame.core.models import DirectoryEntry, PresenceRecord, UserRecord
from flame.core.prekeys import PrekeyRecord
from flame.errors import BadRequest, Conflict, Forbidden

# Called with the new head after a change is committed (this process's or, with PostgreSQL,
# another's): the push hub listens (directory/push.py).
ChangeListener = Callable[[int], None]


def new_invite_code() -> str:
    """A one-time code people can type: 24 base32 characters in groups of four."""
    raw = base64.b32encode(os.urandom(15)).decode()
    return "-".join(raw[i : i + 4] for i in range(0, 24, 4))


def code_hash(code: str) -> bytes:
    normal = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode()).digest()


@dataclass(frozen=True, slots=True)
class InviteRow:
    username: str
    rekey: bool
    expires_at: int
    used_at: int | None


def check_enrollment(
    username: str,
    invite: InviteRow | None,
    *,
    has_invite: bool,
    exists: bool,
    open_registration: bool,
    now: int,
) -> None:
    """The rules of PROTOCOL.md §5.1 step 4, in their order, for both back ends.

    Raises:
        Forbidden, Conflict: with the code of §5.1.
    """
    rekey = False
    if has_invite:
        if invite is None:
            raise Forbidden("This invite code is not valid.", code="bad_invite")
        if invite.used_at is not None:
            raise Forbidden("This invite code was already used.", code="invite_used")
        if invite.expires_at < now:
            raise Forbidden(
                "This invite code has expired; ask for a new one.", code="invite_expired"
            )
        if invite.username != username:
            raise Forbidden(
                f"This invite code is for another username, not {username!r}.", code="bad_invite"
            )
        rekey = invite.rekey
    elif not open_registration:
        raise Forbidden(
            "This directory enrolls users by invite only; ask for an invite code.",
            code="invite_required",
        )
    if exists and not rekey:
        raise taken(username)


def taken(username: str) -> Conflict:
    return Conflict(f"The username {username!r} is taken.", code="username_taken")


def entry_of(user: UserRecord, record_json: str | None) -> DirectoryEntry:
    presence = None if record_json is None else PresenceRecord.model_validate_json(record_json)
    return DirectoryEntry(user=user, presence=presence)


def future_cursor(since: int, head: int) -> BadRequest:
    return BadRequest(
        f"The cursor {since} is ahead of this directory ({head}); sync the full listing.",
        code="bad_cursor",
    )


@dataclass(frozen=True, slots=True)
class Changes:
    """The entries of the users stamped in (since, cursor], in username order."""

    since: int
    cursor: int
    entries: list[DirectoryEntry]


class DirectoryStore(Protocol):
    """What the directory's routes, its admin socket and its loops ask of a back end."""

    listeners: list[ChangeListener]

    async def create_invite(self, username: str, *, rekey: bool, now: int, ttl_s: int) -> str: ...

    async def enroll(
        self,
        user: UserRecord,
        keys: tuple[bytes, bytes, bytes],
        invite: str | None,
        *,
        open_registration: bool,
        now: int,
    ) -> None:
        """Bind a username to keys (and drop its presence); with an invite, the code is spent
        in the same transaction, so only once across every process of a shared database."""

    async def identity_key_of(self, username: str) -> bytes | None: ...

    async def put_presence(self, record: PresenceRecord, expires_at: float) -> None:
        """Keep `record` until `expires_at`. A report that says what the published one says
        (core/presence.py `is_republish`) only moves the expiry: no change, no new head."""

    async def delete_presence(self, username: str) -> None: ...

    async def expire_presence(self, now: float) -> int:
        """Drop the records that expired by `now` (one change); how many."""

    async def entry(self, username: str) -> DirectoryEntry | None: ...

    async def listing(self) -> Changes:
        """Every user (since 0), with the head the listing is at."""

    async def changes(self, since: int) -> Changes:
        """The users changed after cursor `since`. Raises BadRequest `bad_cursor` for a cursor
        above the head."""

    async def head(self) -> int: ...

    async def list_users(self) -> list[UserRecord]: ...

    async def replace_prekeys(self, username: str, records: list[PrekeyRecord]) -> int:
        """Hold exactly these keys for `username`; returns how many one-time keys it holds."""

    async def count_prekeys(self, username: str) -> int: ...

    async def claim_prekey(self, username: str) -> PrekeyRecord | None:
        """One one-time key, removed as it is taken (by one caller only); else the fallback key;
        else None."""

    async def keylog_entries(self, start: int, limit: int) -> list[KeyLogEntry]:
        """Key log entries `start`, `start + 1`, ..., at most `limit` of them (PROTOCOL.md §18.2).
        The entries are written by the triggers of the back end's key log migration, in the
        transaction of each enrolment; a back end only reads them."""

    async def keylog_identity_keys(self, username: str) -> list[bytes]:
        """Every identity key the key log ever held for `username`, newest first."""

    async def close(self) -> None: ...


def keylog_entry(row: Any) -> KeyLogEntry:
    """A KeyLogEntry from a row of `keylog` (either driver's row type)."""
    return KeyLogEntry(
        username=row["username"],
        identity_key=b64e(bytes(row["identity_key"])),
        x25519_key=b64e(bytes(row["x25519_key"])),
        x25519_sig=b64e(bytes(row["x25519_sig"])),
        ts=row["ts"],
        kind=row["kind"],
    )


def user_record(row: Any) -> UserRecord:
    """A UserRecord from a row of `users` (either driver's row type: both index by name)."""
    return UserRecord(
        username=row["username"],
        identity_key=b64e(bytes(row["identity_key"])),
        x25519_key=b64e(bytes(row["x25519_key"])),
        x25519_sig=b64e(bytes(row["x25519_sig"])),
        enrolled_at=row["enrolled_at"],
    )

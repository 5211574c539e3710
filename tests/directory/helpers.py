"""Users and presence records for the directory store's tests (the store checks no signature:
the routes do, before they call it)."""

from __future__ import annotations

import os

from flame.core.encoding import b64e
from flame.core.models import DirectoryEntry, PresenceRecord, Status, UserRecord
from flame.directory.store import DirectoryStore

NOW = 1_800_000_000


def user(name: str, now: int = NOW) -> tuple[UserRecord, tuple[bytes, bytes, bytes]]:
    keys = (os.urandom(32), os.urandom(32), os.urandom(64))
    record = UserRecord(
        username=name,
        identity_key=b64e(keys[0]),
        x25519_key=b64e(keys[1]),
        x25519_sig=b64e(keys[2]),
        enrolled_at=now,
    )
    return record, keys


async def enroll(
    store: DirectoryStore, name: str, invite: str | None = None, now: int = NOW
) -> UserRecord:
    record, keys = user(name, now)
    await store.enroll(record, keys, invite, open_registration=invite is None, now=now)
    return record


def presence(
    name: str, status: Status = "online", ts: int = NOW, port: int = 8470
) -> PresenceRecord:
    return PresenceRecord(
        username=name,
        address=f"https://{name}.example:{port}",
        tls=b64e(bytes(32)),
        status=status,
        versions=[1, 2],
        ts=ts,
        sig=b64e(bytes(64)),
    )


def by_name(entries: list[DirectoryEntry]) -> dict[str, DirectoryEntry]:
    return {e.user.username: e for e in entries}

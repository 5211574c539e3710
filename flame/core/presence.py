"""Presence rules: what a signed presence record says about a user, at a given time. No I/O here."""

from __future__ import annotations

from typing import Any

from flame.core.crypto import Identity
from flame.core.models import PresenceRecord, Status
from flame.core.signing import sign_record, verify_record

CONTEXT = "presence"


def presence_fields(record: PresenceRecord) -> dict[str, Any]:
    return record.model_dump(exclude={"sig"})


def make_presence(
    identity: Identity, username: str, address: str, status: Status, versions: list[int], ts: int
) -> PresenceRecord:
    fields: dict[str, Any] = {
        "username": username,
        "address": address,
        "status": status,
        "versions": versions,
        "ts": ts,
    }
    return PresenceRecord(**fields, sig=sign_record(identity, CONTEXT, fields))


def verify_presence(record: PresenceRecord, identity_key: bytes) -> bool:
    return verify_record(identity_key, CONTEXT, presence_fields(record), record.sig)


def valid_address(address: str) -> bool:
    """An http(s) base URL without a trailing slash (PROTOCOL.md §5.3)."""
    return address.startswith(("http://", "https://")) and not address.endswith("/")


def is_fresh(record: PresenceRecord, now: float, ttl_s: float) -> bool:
    """A report counts for ttl_s after it was made (and never from the future, beyond skew)."""
    return record.ts - 300 <= now < record.ts + ttl_s


def effective_status(record: PresenceRecord | None, now: float, ttl_s: float) -> Status:
    if record is None or not is_fresh(record, now, ttl_s):
        return "offline"
    return record.status

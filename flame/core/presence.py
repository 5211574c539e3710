"""Presence rules: what a signed presence record says about a user, at a given time. No I/O here."""

from __future__ import annotations

from typing import Any

from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.models import PresenceRecord, Status
from flame.core.signing import sign_record, verify_record

CONTEXT = "presence"
# A directory republishes an unchanged report (a new head, PROTOCOL.md §5.4) once it is this old,
# so a listed record is never older than this plus the TTL; in between, a report that says the
# same only keeps the record alive.
REPUBLISH_S = 3600


def presence_fields(record: PresenceRecord) -> dict[str, Any]:
    return record.model_dump(exclude={"sig"})


def make_presence(
    identity: Identity,
    username: str,
    address: str,
    status: Status,
    versions: list[int],
    ts: int,
    *,
    tls: bytes | None,
) -> PresenceRecord:
    """`tls`: the SHA-256 of the certificate the peer listener presents (None: plain HTTP)."""
    fields: dict[str, Any] = {
        "username": username,
        "address": address,
        "tls": None if tls is None else b64e(tls),
        "status": status,
        "versions": versions,
        "ts": ts,
    }
    return PresenceRecord(**fields, sig=sign_record(identity, CONTEXT, fields))


def verify_presence(record: PresenceRecord, identity_key: bytes) -> bool:
    return verify_record(identity_key, CONTEXT, presence_fields(record), record.sig)


def is_fresh(record: PresenceRecord, now: float, ttl_s: float) -> bool:
    """A report counts for ttl_s after it was made (and never from the future, beyond skew)."""
    return record.ts - 300 <= now < record.ts + ttl_s


def effective_status(record: PresenceRecord | None, now: float, ttl_s: float) -> Status:
    if record is None or not is_fresh(record, now, ttl_s):
        return "offline"
    return record.status


def material(record: PresenceRecord) -> str:
    """What a reader acts on, as one text: address, certificate, status, versions."""
    return f"{record.address} {record.tls} {record.status} {record.versions}"


def is_republish(published: PresenceRecord, report: PresenceRecord) -> bool:
    """`report` says what `published` says (address, certificate, status, versions) and the
    published one is younger than REPUBLISH_S: the listing need not change (PROTOCOL.md §5.4)."""
    return material(published) == material(report) and report.ts - published.ts < REPUBLISH_S


def listed_ttl_s(ttl_s: float) -> float:
    """How long a reader believes a record the directory still lists (PROTOCOL.md §5.3): the
    directory expires it after `ttl_s` without a report, and republishes it at REPUBLISH_S."""
    return ttl_s + REPUBLISH_S

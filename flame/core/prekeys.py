"""Version 2 prekeys (PROTOCOL.md §14.3): the records a user publishes at the directory, signed
by its Flame identity key, and what the directory's routes carry. No I/O here."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flame.core.crypto import Identity
from flame.core.models import B64, Username, Wire
from flame.core.signing import sign_record, verify_record

PREKEY_CONTEXT = "prekey"


class PrekeyRecord(Wire):
    """A Curve25519 prekey of `username`'s ratchet identity, signed by the Flame identity key."""

    username: Username
    identity: B64
    key: B64
    fallback: bool
    sig: B64


class PrekeyUpload(Wire):
    """PUT /dir/v1/prekeys: replaces every one-time key the directory holds for the caller."""

    one_time: list[PrekeyRecord] = Field(max_length=100)
    fallback: PrekeyRecord


class PrekeyCount(Wire):
    one_time_left: int = Field(ge=0)


class PrekeyClaim(Wire):
    """POST /dir/v1/prekeys/{name}/claim: one one-time key (gone from the directory), or the
    fallback key when none is left."""

    prekey: PrekeyRecord


def prekey_fields(username: str, identity: str, key: str, fallback: bool) -> dict[str, Any]:
    return {"username": username, "identity": identity, "key": key, "fallback": fallback}


def sign_prekey(
    identity: Identity, username: str, ratchet_identity: str, key: str, *, fallback: bool
) -> PrekeyRecord:
    fields = prekey_fields(username, ratchet_identity, key, fallback)
    return PrekeyRecord(**fields, sig=sign_record(identity, PREKEY_CONTEXT, fields))


def verify_prekey(record: PrekeyRecord, identity_key: bytes) -> bool:
    fields = prekey_fields(record.username, record.identity, record.key, record.fallback)
    return verify_record(identity_key, PREKEY_CONTEXT, fields, record.sig)

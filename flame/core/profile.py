"""Profiles (PROTOCOL.md §12.1): signing and verifying the record a user publishes about
themselves. The models (`Profile`, `ProfileFields`, `ProfileUpdateBody`) live in core/models.py
with the other wire models; avatar checks in core/image.py. No I/O here.

A profile travels two ways: fetched (`GET /api/v1/profile`) and pushed in a `profile_update`
envelope. Either way the reader verifies the signature with the pinned identity key and keeps it
only if it is newer (`ts`) than the one it holds.
"""

from __future__ import annotations

from typing import Any

from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.models import Profile, ProfileFields
from flame.core.signing import sign_record, verify_record

CONTEXT = "profile"


def profile_fields(profile: Profile) -> dict[str, Any]:
    return profile.model_dump(exclude={"sig"})


def make_profile(
    identity: Identity, username: str, fields: ProfileFields, avatar: bytes | None, ts: int
) -> Profile:
    """Sign a profile. Raises pydantic's ValidationError if a field or the avatar breaks a limit
    (the callers check them first, with reasons)."""
    unsigned: dict[str, Any] = {
        "username": username,
        **fields.model_dump(),
        "avatar": None if avatar is None else b64e(avatar),
        "ts": ts,
    }
    return Profile.model_validate({**unsigned, "sig": sign_record(identity, CONTEXT, unsigned)})


def verify_profile(profile: Profile, username: str, identity_key: bytes) -> bool:
    """True if `profile` is `username`'s and its signature verifies with their identity key."""
    return profile.username == username and verify_record(
        identity_key, CONTEXT, profile_fields(profile), profile.sig
    )

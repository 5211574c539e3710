"""How a person is shown in the UI: name, profile, avatar, status, keys, blocked or not.

Shared by the contact list (roster.contact_view), profile pages and search results.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flame import status
from flame.blocks import blocked_names
from flame.core.crypto import fingerprint, safety_number
from flame.parts import Parts
from flame.store import contacts as contact_store
from flame.store import profiles as profile_store
from flame.store.profiles import StoredProfile


def avatar_url(username: str, profile: StoredProfile | None) -> str | None:
    if profile is None or profile.avatar is None:
        return None
    # The version makes a new avatar a new URL, so the browser never shows a stale cached one.
    return f"/ui/api/profiles/{quote(username, safe='')}/avatar?v={profile.ts}"


def summary(username: str, profile: StoredProfile | None, blocked: set[str]) -> dict[str, Any]:
    """The few profile fields shown wherever a person appears."""
    return {
        "display_name": profile.display_name if profile is not None else "",
        "position": profile.position if profile is not None else "",
        "avatar_url": avatar_url(username, profile),
        "blocked": username in blocked,
    }


async def person_summary(parts: Parts, username: str) -> dict[str, Any]:
    profile = await profile_store.get_profile(parts.db, username)
    return summary(username, profile, await blocked_names(parts))


async def profile_view(parts: Parts, username: str) -> dict[str, Any]:
    """Everything the profile page shows about `username` (this user or anyone else)."""
    profile = await profile_store.get_profile(parts.db, username)
    is_me = username == parts.me
    contact = None if is_me else await contact_store.get_contact(parts.db, username)
    view: dict[str, Any] = {
        "username": username,
        "is_me": is_me,
        "known": is_me or contact is not None,
        **summary(username, profile, await blocked_names(parts)),
        "location": profile.location if profile is not None else "",
        "bio": profile.bio if profile is not None else "",
        "updated_at": profile.ts / 1000 if profile is not None else None,
        "status": status.current(parts) if is_me else (contact.status if contact else "offline"),
        "fingerprint": None,
        "safety_number": None,
        "key_changed": False,
    }
    if is_me:
        view["fingerprint"] = fingerprint(parts.account.identity_key)
    elif contact is not None:
        view["fingerprint"] = fingerprint(contact.identity_key)
        view["safety_number"] = safety_number(parts.account.identity_key, contact.identity_key)
        view["key_changed"] = contact.key_changed
    return view

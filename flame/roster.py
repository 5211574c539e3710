"""Who we know: contacts from the directory, pinned on first use, with their presence.

The directory is trusted for availability only: every binding and presence signature is checked
here against the key we pinned, and a different key is parked as a key change, never used.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from flame.core.crypto import binding_message, fingerprint, safety_number, verify_signature
from flame.core.encoding import b64d, b64e
from flame.core.models import USERNAME_RE, DirectoryEntry
from flame.core.presence import effective_status, verify_presence
from flame.errors import BadRequest, FlameError, PeerRefused
from flame.parts import Parts
from flame.people import person_summary
from flame.store import contacts as contact_store
from flame.store import messages as message_store
from flame.store import outbox as outbox_store
from flame.store.contacts import Contact

log = logging.getLogger("flame.roster")
UNKNOWN_USER_TTL_S = 60.0


async def apply_entries(parts: Parts, entries: list[DirectoryEntry]) -> None:
    """Pin or check keys, then record presence, and tell the UI what changed."""
    now = parts.clock.now()
    ttl = parts.settings.directory.presence_ttl_s
    before = {c.username: c for c in await contact_store.list_contacts(parts.db)}
    updates: list[tuple[str, str | None, str, int | None]] = []
    changed: list[dict[str, Any]] = []
    online: list[str] = []
    for entry in entries:
        user = entry.user
        if user.username == parts.me:
            continue
        try:
            identity_key = b64d(user.identity_key, length=32, what="identity_key")
            x25519_key = b64d(user.x25519_key, length=32, what="x25519_key")
            x25519_sig = b64d(user.x25519_sig, length=64, what="x25519_sig")
        except BadRequest:
            log.warning("directory sent a malformed record for %s; ignored", user.username)
            continue
        if not verify_signature(
            identity_key, x25519_sig, binding_message(user.username, x25519_key)
        ):
            log.warning("directory record for %s has a bad key binding; ignored", user.username)
            continue
        outcome = await contact_store.offer_keys(
            parts.db, user.username, identity_key, x25519_key, x25519_sig, now
        )
        if outcome.is_key_change:
            log.warning(
                "identity key of %s changed; refusing it until the user accepts", user.username
            )
            parts.hub.publish({"type": "key_change", "username": user.username})
        pinned = before.get(user.username)
        pinned_key = identity_key if pinned is None else pinned.identity_key
        presence = entry.presence
        if presence is not None and (
            presence.username != user.username or not verify_presence(presence, pinned_key)
        ):
            presence = None  # unsigned by the pinned key: not believed
        status = effective_status(presence, now, ttl)
        address = (
            presence.address
            if presence is not None
            else (pinned.address if pinned is not None else None)
        )
        ts = presence.ts if presence is not None else None
        old_status = pinned.status if pinned is not None else "offline"
        if pinned is None or old_status != status or pinned.address != address:
            updates.append((user.username, address, status, ts))
        if old_status != status:
            changed.append({"type": "presence", "username": user.username, "status": status})
            if status != "offline":
                online.append(user.username)
    await contact_store.set_presence(parts.db, updates)
    for event in changed:  # after the commit: a UI that reacts by asking sees the new state
        parts.hub.publish(event)
    await came_online(parts, online)


async def came_online(parts: Parts, names: list[str]) -> None:
    """Peers just seen online: what waits for them goes now, not at the end of its backoff."""
    if names:
        await outbox_store.due_now(parts.db, names)
        parts.wake_outbox.set()
        parts.wake_relay.set()


async def sync_directory_once(parts: Parts, etag: str | None) -> str | None:
    """Fetch the user list (conditional on `etag`) and apply it. Returns the new etag."""
    listing, new_etag = await parts.client.directory_users(parts.directory_url, etag)
    if listing is not None:
        await apply_entries(parts, listing.users)
    return new_etag


async def lookup_identity_key(parts: Parts, username: str) -> bytes | None:
    """The pinned identity key of a caller, asking the directory about strangers."""
    if not USERNAME_RE.fullmatch(username):
        return None
    contact = await contact_store.get_contact(parts.db, username)
    if contact is None and parts.identity is not None:
        contact = await fetch_contact(parts, username)
    return None if contact is None else contact.identity_key


async def fetch_contact(parts: Parts, username: str) -> Contact | None:
    """Ask the directory about one user (someone new wrote to us, or the UI named them).

    A name the directory does not know is remembered for a minute, so a stream of requests naming
    strangers cannot turn this daemon into a load on the directory.
    """
    now = parts.clock.now()
    if parts.unknown_users.get(username, 0.0) > now:
        return None
    try:
        entry = await parts.client.directory_user(parts.directory_url, username)
    except PeerRefused as exc:
        if exc.http_status == 404:
            if len(parts.unknown_users) > 10_000:
                parts.unknown_users.clear()
            parts.unknown_users[username] = now + UNKNOWN_USER_TTL_S
        return None
    except FlameError:
        return None
    await apply_entries(parts, [entry])
    return await contact_store.get_contact(parts.db, username)


async def contact_view(parts: Parts, contact: Contact) -> dict[str, Any]:
    last = await message_store.list_messages(parts.db, contact.username, before=None, limit=1)
    return {
        "username": contact.username,
        "status": contact.status,
        "fingerprint": fingerprint(contact.identity_key),
        "safety_number": safety_number(parts.account.identity_key, contact.identity_key),
        "key_changed": contact.key_changed,
        "unread": await message_store.unread_count(parts.db, contact.username),
        "last_message": last[0].to_ui() if last else None,
        **(await person_summary(parts, contact.username)),  # display name, avatar, blocked
    }


async def probe_once(parts: Parts) -> None:
    """Degraded mode (DESIGN §7): ask every known peer directly, with a signed hello, whether it
    is up; a peer answers for itself only if its identity key is the one we pinned."""
    known = [c for c in await contact_store.list_contacts(parts.db) if c.address]
    slots = asyncio.Semaphore(parts.settings.daemon.probe_concurrency)

    async def probe(contact: Contact) -> tuple[Contact, str]:
        async with slots:
            try:
                hello = await parts.client.hello(contact.address or "", contact.username)
            except FlameError:
                return contact, "offline"
        is_them = (
            hello.username == contact.username
            and not hello.locked
            and hello.identity_key == b64e(contact.identity_key)
        )
        return contact, "online" if is_them else "offline"

    results = await asyncio.gather(*(probe(c) for c in known))
    updates = [
        (c.username, c.address, status, c.presence_ts)
        for c, status in results
        if status != c.status
    ]
    await contact_store.set_presence(parts.db, updates)
    for name, _, status, _ in updates:
        parts.hub.publish({"type": "presence", "username": name, "status": status})
    await came_online(parts, [name for name, _, status, _ in updates if status != "offline"])

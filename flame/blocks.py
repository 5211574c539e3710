"""Blocking (PROTOCOL.md §12.4): the people this user refuses to hear from.

A blocked user's requests are refused at the remote API with a bare 403 before their body is read
or anything is decrypted (net/peer_guard.py); an envelope they wrote that reaches us through someone
else is refused after opening (messaging); they vanish from the contact list unless asked for.
`is_blocked` is the one question other parts ask (relays must not hold deposits for them).
"""

from __future__ import annotations

from flame.parts import Parts
from flame.store import blocks as block_store


async def blocked_names(parts: Parts) -> set[str]:
    """The blocked usernames, cached in memory (the remote API asks on every request)."""
    if parts.blocked is None:
        parts.blocked = set(await block_store.blocked_users(parts.db))
    return parts.blocked


async def is_blocked(parts: Parts, username: str) -> bool:
    """True if this user blocked `username`: refuse their requests, do not relay for them."""
    return username in await blocked_names(parts)


async def block(parts: Parts, username: str) -> None:
    await block_store.add_block(parts.db, username, parts.clock.now())
    (await blocked_names(parts)).add(username)
    parts.hub.publish({"type": "blocked", "username": username, "blocked": True})


async def unblock(parts: Parts, username: str) -> None:
    await block_store.remove_block(parts.db, username)
    (await blocked_names(parts)).discard(username)
    parts.hub.publish({"type": "blocked", "username": username, "blocked": False})


async def blocked_list(parts: Parts) -> list[dict[str, object]]:
    users = await block_store.blocked_users(parts.db)
    return [{"username": name, "blocked_at": at} for name, at in users.items()]

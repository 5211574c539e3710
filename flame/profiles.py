"""Contacts' profiles, the daemon's side (PROTOCOL.md §12.1): pushed in `profile_update`
envelopes or fetched from the contact's daemon, verified with the pinned identity key, kept only
when newer, and shown to the UI. This user's own profile is edited in my_profile.py.

A profile that does not verify is ignored and reported: a warning in the log and a
`profile_rejected` event for the UI. The cache is never touched by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flame.core.models import Profile, ProfileUpdateBody
from flame.core.profile import verify_profile
from flame.errors import FlameError, PeerRefused
from flame.net.peer_profile import fetch_profile
from flame.parts import Parts
from flame.people import profile_view
from flame.store import contacts as contact_store
from flame.store import profiles as profile_store
from flame.store.messages import Incoming

log = logging.getLogger("flame.profiles")
FETCH_CONCURRENCY = 4
RETRY_FAILED_S = 60.0  # a contact whose daemon did not answer is asked again after this
MAX_POLL_S = 30.0  # how often online contacts without a profile are looked for
REQUEST_MIN_S = 10.0  # the UI asking again for the same profile within this is not re-fetched


def report_bad_profile(parts: Parts, username: str, reason: str) -> None:
    log.warning("profile of %s ignored: %s", username, reason)
    parts.hub.publish({"type": "profile_rejected", "username": username, "reason": reason})


async def accept_profile(parts: Parts, username: str, profile: Profile, how: str) -> bool:
    """Keep `username`'s profile if it verifies and is newer. True: it replaced the cache."""
    contact = await contact_store.get_contact(parts.db, username)
    if contact is None:
        report_bad_profile(parts, username, f"{how}: the author is not a contact")
        return False
    if not verify_profile(profile, username, contact.identity_key):
        report_bad_profile(
            parts, username, f"{how}: the signature does not verify with {username}'s key"
        )
        return False
    stored = await profile_store.put_profile(parts.db, profile, parts.clock.now())
    if stored:
        parts.hub.publish({"type": "profile", "profile": await profile_view(parts, username)})
    return stored


async def receive_profile_updates(parts: Parts, items: list[Incoming]) -> list[bool]:
    """messaging.RECEIVERS["profile_update"]: True for a profile that replaced the cache. The
    envelope's author is proven by its sealed sender key; the profile must also carry their
    signature (a profile is meant to be shown to others, so it must be provable)."""
    results = []
    for item in items:
        body = item.inner.body
        assert isinstance(body, ProfileUpdateBody)  # core.models.KIND_BODIES
        results.append(await accept_profile(parts, item.inner.from_, body.profile, "pushed"))
    return results


async def refresh_profile(parts: Parts, username: str) -> bool:
    """Fetch `username`'s profile from their daemon now. True: a newer one was stored."""
    contact = await contact_store.get_contact(parts.db, username)
    if contact is None or not contact.address or username == parts.me:
        return False
    try:
        profile = await fetch_profile(parts.client, contact.address, username)
    except PeerRefused as exc:
        if exc.code == "bad_reply":
            report_bad_profile(parts, username, "fetched: the answer is not a valid profile")
        elif exc.http_status == 404:
            await profile_store.mark_checked(parts.db, username, parts.clock.now())
        return False
    return await accept_profile(parts, username, profile, "fetched")


def request_refresh(parts: Parts, username: str) -> None:
    """Ask the sync task to fetch `username`'s profile soon (the UI opened their page)."""
    if parts.profile_requests.qsize() < 1000:
        parts.profile_requests.put_nowait(username)


async def sync_profiles(parts: Parts) -> None:
    """Fetch the profiles the UI asked for, and those of online contacts that have none or an
    old one (refresh_s); pushes keep them current in between."""
    refresh_s = parts.settings.profiles.refresh_s
    answered: dict[str, float] = {}  # name -> when their daemon last answered a fetch
    failed: dict[str, float] = {}  # name -> when their daemon last could not be reached
    slots = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def fetch(name: str) -> None:
        async with slots:
            try:
                await refresh_profile(parts, name)
            except FlameError as exc:
                log.debug("profile of %s not fetched: %s", name, exc.message)
                failed[name] = parts.clock.now()
            else:
                answered[name] = parts.clock.now()

    def is_due(name: str, now: float) -> bool:
        return (
            now - answered.get(name, -refresh_s) >= refresh_s
            and now - failed.get(name, -RETRY_FAILED_S) >= RETRY_FAILED_S
        )

    async def next_round() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(refresh_s, MAX_POLL_S)):
                # Woken by a request: put it back for the round to take with the others.
                parts.profile_requests.put_nowait(await parts.profile_requests.get())

    while True:
        # First wait: at start the contacts' presence is not known yet, and the first round
        # would find nobody online to ask.
        await next_round()
        now = parts.clock.now()
        names: list[str] = []
        while not parts.profile_requests.empty():
            name = parts.profile_requests.get_nowait()
            if now - answered.get(name, -REQUEST_MIN_S) >= REQUEST_MIN_S:  # a page reloaded
                names.append(name)
        stale = await profile_store.stale_contacts(parts.db, now - refresh_s, 32)
        names.extend(name for name in stale if is_due(name, now))
        if len(answered) + len(failed) > 10_000:
            answered.clear()
            failed.clear()
        await asyncio.gather(*(fetch(name) for name in dict.fromkeys(names)))

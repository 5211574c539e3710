"""Profiles (PROTOCOL.md §12.1). Contacts' profiles are pushed in `profile_update` envelopes or
fetched from the contact's daemon, verified with the pinned identity key, kept only when newer,
and shown to the UI. This user's own is edited in the UI, signed here, stored, and pushed to every
contact through the outbox (so a contact who is offline gets it when they are back; a newer
update replaces a queued older one).

A profile that does not verify is ignored and reported: a warning in the log and a
`profile_rejected` event for the UI. The cache is never touched by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Final

from flame.core.models import Profile, ProfileFields, ProfileUpdateBody
from flame.core.profile import make_profile, verify_profile
from flame.errors import FlameError, PeerRefused
from flame.net.peer_client import PeerClient
from flame.services.blocks import Blocks
from flame.services.context import Context
from flame.services.events import ProfileChanged, ProfileRejected
from flame.services.messaging import Messaging
from flame.services.people import People, Person
from flame.services.status import StatusTracker
from flame.store import contacts as contact_store
from flame.store import profiles as profile_store
from flame.store.messages import Incoming

log = logging.getLogger("flame.profiles")
FETCH_CONCURRENCY = 4
RETRY_FAILED_S = 60.0  # a contact whose daemon did not answer is asked again after this
MAX_POLL_S = 30.0  # how often online contacts without a profile are looked for
REQUEST_MIN_S = 10.0  # the UI asking again for the same profile within this is not re-fetched
REQUESTS_MAX = 1000
REMEMBERED_MAX = 10_000


class Keep:
    """Leave the avatar as it is."""


KEEP: Final = Keep()


@dataclass(eq=False)
class Profiles:
    ctx: Context
    client: PeerClient
    people: People
    messaging: Messaging
    blocks: Blocks
    status: StatusTracker
    # Names the UI asked about.
    requests: asyncio.Queue[str] = field(default_factory=asyncio.Queue, init=False)

    # --- contacts' profiles -------------------------------------------------------------------

    def reject(self, username: str, reason: str) -> None:
        log.warning("profile of %s ignored: %s", username, reason)
        self.ctx.events.publish(ProfileRejected(username, reason))

    async def accept(self, username: str, profile: Profile, how: str) -> bool:
        """Keep `username`'s profile if it verifies and is newer. True: it replaced the cache."""
        contact = await contact_store.get_contact(self.ctx.db, username)
        if contact is None:
            self.reject(username, f"{how}: the author is not a contact")
            return False
        if not verify_profile(profile, username, contact.identity_key):
            self.reject(username, f"{how}: the signature does not verify with {username}'s key")
            return False
        stored = await profile_store.put_profile(self.ctx.db, profile, self.ctx.clock.now())
        if stored:
            self.ctx.events.publish(ProfileChanged(await self.people.person(username)))
        return stored

    async def receive_updates(self, items: list[Incoming]) -> list[bool]:
        """The receiver of `profile_update`: True for a profile that replaced the cache. The
        envelope's author is proven by its sealed sender key; the profile must also carry their
        signature (a profile is meant to be shown to others, so it must be provable)."""
        results = []
        for item in items:
            body = item.inner.body
            assert isinstance(body, ProfileUpdateBody)  # core.models.KIND_BODIES
            results.append(await self.accept(item.inner.from_, body.profile, "pushed"))
        return results

    async def refresh(self, username: str) -> bool:
        """Fetch `username`'s profile from their daemon now. True: a newer one was stored."""
        contact = await contact_store.get_contact(self.ctx.db, username)
        peer = None if contact is None else contact.endpoint
        if peer is None or username == self.ctx.me:
            return False
        try:
            profile = await self.client.profile(peer)
        except PeerRefused as exc:
            if exc.code == "bad_reply":
                self.reject(username, "fetched: the answer is not a valid profile")
            elif exc.http_status == 404:
                await profile_store.mark_checked(self.ctx.db, username, self.ctx.clock.now())
            return False
        return await self.accept(username, profile, "fetched")

    def request_refresh(self, username: str) -> None:
        """Ask the sync loop to fetch `username`'s profile soon (the UI opened their page)."""
        if self.requests.qsize() < REQUESTS_MAX:
            self.requests.put_nowait(username)

    async def sync(self) -> None:
        """The loop: fetch the profiles the UI asked for, and those of online contacts that have
        none or an old one (refresh_s); pushes keep them current in between."""
        ctx = self.ctx
        refresh_s = ctx.settings.profiles.refresh_s
        answered: dict[str, float] = {}  # name -> when their daemon last answered a fetch
        failed: dict[str, float] = {}  # name -> when their daemon last could not be reached
        slots = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def fetch(name: str) -> None:
            async with slots:
                try:
                    await self.refresh(name)
                except FlameError as exc:
                    log.debug("profile of %s not fetched: %s", name, exc.message)
                    failed[name] = ctx.clock.now()
                else:
                    answered[name] = ctx.clock.now()

        def is_due(name: str, now: float) -> bool:
            return (
                now - answered.get(name, -refresh_s) >= refresh_s
                and now - failed.get(name, -RETRY_FAILED_S) >= RETRY_FAILED_S
            )

        async def next_round() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(refresh_s, MAX_POLL_S)):
                    # Woken by a request: put it back for the round to take with the others.
                    self.requests.put_nowait(await self.requests.get())

        while True:
            # First wait: at start the contacts' presence is not known yet, and the first round
            # would find nobody online to ask.
            await next_round()
            now = ctx.clock.now()
            names: list[str] = []
            while not self.requests.empty():
                name = self.requests.get_nowait()
                if now - answered.get(name, -REQUEST_MIN_S) >= REQUEST_MIN_S:  # a page reloaded
                    names.append(name)
            stale = await profile_store.stale_contacts(ctx.db, now - refresh_s, 32)
            names.extend(name for name in stale if is_due(name, now))
            # Appearing offline, a fetch would tell the contact the user is up (§12.2): none.
            names = [name for name in names if self.status.may_reach(name)]
            if len(answered) + len(failed) > REMEMBERED_MAX:
                answered.clear()
                failed.clear()
            await asyncio.gather(*(fetch(name) for name in dict.fromkeys(names)))

    # --- this user's own ----------------------------------------------------------------------

    async def update_own(
        self, fields: ProfileFields | None = None, avatar: bytes | Keep | None = KEEP
    ) -> Person:
        """Sign and store a new version of this user's profile, then push it to every contact.
        `fields` None keeps the text; `avatar` KEEP keeps the picture, None removes it."""
        ctx = self.ctx
        identity = ctx.keys.identity()
        current = await profile_store.get_profile(ctx.db, ctx.me)
        if fields is None:
            fields = ProfileFields(
                display_name=current.display_name if current else "",
                position=current.position if current else "",
                location=current.location if current else "",
                bio=current.bio if current else "",
            )
        if isinstance(avatar, Keep):
            avatar = current.avatar if current else None
        now = ctx.clock.now()
        ts = max(int(now * 1000), current.ts + 1 if current else 0)  # always newer than the last
        profile = make_profile(identity, ctx.me, fields, avatar, ts)
        await profile_store.put_profile(ctx.db, profile, now)
        person = await self.people.person(ctx.me)
        ctx.events.publish(ProfileChanged(person))
        await self.push(profile)
        return person

    async def push(self, profile: Profile) -> None:
        blocked = await self.blocks.names()
        targets = [
            contact
            for contact in await contact_store.list_contacts(self.ctx.db)
            if not contact.key_changed and contact.username not in blocked
        ]
        await profile_store.drop_pending_updates(self.ctx.db, [c.username for c in targets])
        if targets:
            await self.messaging.send_to(
                targets, "profile_update", ProfileUpdateBody(profile=profile)
            )

"""Which protocol version each peer gets (PROTOCOL.md §9, §14.2), and the pair keys of version 2's
deniable requests (§14.8)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flame.core import ratchet
from flame.errors import RequestError, Unavailable
from flame.services.context import Context
from flame.services.events import VersionChanged
from flame.store import contacts as contact_store
from flame.store import sessions as store
from flame.store.contacts import Contact


def old_version(peer: str) -> Unavailable:
    return Unavailable(
        f"{peer}'s Flame speaks only protocol version 1, which this daemon refuses "
        "(security.min_version = 2): no forward secrecy with them.",
        code="old_version",
        status=409,
    )


def no_prekeys_yet(peer: str) -> Unavailable:
    """A version 2 peer without prekeys: a daemon just started publishes its first ones within
    moments (PROTOCOL.md §14.3), so "not now" rather than "never"."""
    return Unavailable(
        f"{peer} has published no prekeys yet; try again in a moment.",
        code="no_session",
        retry_after_s=5,
    )


VERSIONS_CACHE_S = 1.0


@dataclass(eq=False)
class Negotiation:
    ctx: Context
    pair_keys: dict[tuple[str, bytes], bytes] = field(default_factory=dict, init=False)
    known: dict[str, tuple[float, tuple[int, ...] | None]] = field(
        default_factory=dict, init=False
    )  # peer -> (until when, its versions)

    # --- versions (PROTOCOL.md §9) ---------------------------------------------------------

    @property
    def versions(self) -> tuple[int, ...]:
        return self.ctx.settings.security.versions

    async def peer_versions(self, peer: str) -> tuple[int, ...] | None:
        """What `peer` speaks, as far as we know (PROTOCOL.md §14.2): its newest verified
        presence record says; without one, a session with it says 2, and a claim that found no
        prekeys says 1; None when nothing says. Read at most once a second per peer."""
        now = self.ctx.clock.now()
        cached = self.known.get(peer)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await store.versions_of(self.ctx.db, peer)
        theirs = None if found is None else found[0]
        if (found is None or found[1] == 0) and await store.has_sessions(self.ctx.db, peer):
            theirs = tuple(sorted({*(theirs or ()), 2}))
        self.known[peer] = (now + VERSIONS_CACHE_S, theirs)
        return theirs

    async def note_versions(self, updates: list[tuple[str, list[int], int]]) -> None:
        """Record what peers speak, from signed records (time > 0) or a claim that found no
        prekeys (time 0), and tell the UI of every conversation whose shown version changed."""
        held = await store.versions_of_many(self.ctx.db, [name for name, _, _ in updates])
        news = {
            name: versions
            for name, versions, ts in updates
            if name not in held or (ts > held[name][1] and tuple(versions) != held[name][0])
        }
        before = {}
        for name in news:
            self.forget(name)
            before[name] = await self.shown_version(name)
        await store.set_peer_versions(self.ctx.db, updates)
        for name in news:
            self.forget(name)
            if (shown := await self.shown_version(name)) != before[name]:
                self.ctx.events.publish(VersionChanged(name, shown))

    def forget(self, peer: str) -> None:
        """What `peer` speaks is read again at the next question (a session just started)."""
        self.known.pop(peer, None)

    async def version_for(self, peer: str) -> int:
        """The highest version both speak; an unknown peer is tried with 2 (the claim of a
        prekey tells). Raises `old_version` when they share none."""
        theirs = await self.peer_versions(peer)
        common = [v for v in self.versions if theirs is None or v in theirs]
        if common:
            return max(common)
        if theirs is not None and max(theirs) < min(self.versions):
            raise old_version(peer)
        return max(self.versions)  # they are newer: they refuse it, or take it (§14.2)

    async def shown_version(self, peer: str) -> int:
        """The version a conversation shows (docs/UI_API.md `protocol_version`)."""
        try:
            return await self.version_for(peer)
        except RequestError:
            return 1

    # --- deniable requests (PROTOCOL.md §14.8) -----------------------------------------------

    async def pair_key(self, peer: str) -> bytes | None:
        """The pair key for a request to `peer` when both speak version 2, else None (sign)."""
        if 2 not in self.versions or not self.ctx.keys.is_unlocked:
            return None
        theirs = await self.peer_versions(peer)
        # Speaking only version 2, this daemon has nothing else to offer: a signature would be
        # refused (§14.2) even by a peer whose versions it has not learnt yet.
        if 1 in self.versions and (theirs is None or 2 not in theirs):
            return None
        contact = await contact_store.get_contact(self.ctx.db, peer)
        return None if contact is None or contact.key_changed else self._pair(contact)

    async def request_key(self, contact: Contact | None) -> bytes | None:
        """The pair key to check a MAC request from `contact` (None: refused)."""
        if 2 not in self.versions or contact is None or contact.key_changed:
            return None
        return self._pair(contact)

    def _pair(self, contact: Contact) -> bytes:
        cache_key = (contact.username, contact.x25519_key)
        if cache_key not in self.pair_keys:
            self.pair_keys[cache_key] = ratchet.pair_key(
                self.ctx.keys.identity().exchange, self.ctx.me, contact.x25519_key, contact.username
            )
        return self.pair_keys[cache_key]

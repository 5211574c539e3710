"""Who we know: contacts from the directory, pinned on first use, with their presence; the link to
the directory (its address, whether it answers) and, while it does not, direct probes.

The directory is trusted for availability only: every binding and presence signature is checked
here against the key we pinned, and a different key is parked as a key change, never used. A
presence whose address or certificate fingerprint does not parse is ignored like one whose
signature fails (PROTOCOL.md §5.3).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from flame.core.crypto import binding_message, verify_signature
from flame.core.encoding import b64d, b64e
from flame.core.models import USERNAME_RE, DirectoryEntry, PresenceRecord
from flame.core.presence import effective_status, listed_ttl_s, verify_presence
from flame.core.ratelimit import TokenBuckets
from flame.core.transport import Endpoint, endpoint
from flame.errors import (
    BadRequest,
    Conflict,
    FlameError,
    NotFound,
    PeerRefused,
    TooManyRequests,
)
from flame.net.peer_client import PeerClient
from flame.services.blocks import Blocks
from flame.services.context import Context
from flame.services.events import DirectoryStateChanged, KeyChanged, PresenceChanged
from flame.services.keylog import KeyLog
from flame.services.negotiation import Negotiation
from flame.store import contacts as contact_store
from flame.store import outbox as outbox_store
from flame.store.contacts import Contact, PresenceUpdate

log = logging.getLogger("flame.contacts")
UNKNOWN_USER_TTL_S = 60.0
UNKNOWN_USERS_MAX = 10_000


@dataclass(eq=False)
class Contacts:
    ctx: Context
    client: PeerClient
    blocks: Blocks
    negotiation: Negotiation
    directory: Endpoint
    keylog: KeyLog  # keys are pinned only once the directory's key log holds them (§18.4)
    directory_state: str = field(default="unknown", init=False)  # "ok" | "degraded" | "unknown"
    # The first directory sync (or probe round) is done.
    synced: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # Name -> do not ask the directory before.
    unknown_users: dict[str, float] = field(default_factory=dict, init=False)
    # Directory lookups that peers' requests cause, all peers together (PROTOCOL.md §12.5).
    stranger_lookups: TokenBuckets = field(init=False)
    # Entries not pinned because the key log did not hold their keys (yet): pinned once a read
    # of the log shows them, with no need for the cursor's next change or a lookup (§18.4).
    unlogged: dict[str, DirectoryEntry] = field(default_factory=dict, init=False)
    pinning: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        limits = self.ctx.settings.limits
        self.stranger_lookups = TokenBuckets(
            limits.stranger_lookups_per_s, limits.stranger_lookup_burst
        )
        self.keylog.listeners.append(self._log_read)

    def _log_read(self) -> None:
        if self.unlogged and (self.pinning is None or self.pinning.done()):
            self.pinning = asyncio.create_task(self._pin_logged(), name="contacts-pin-logged")

    async def _pin_logged(self) -> None:
        """Apply the parked entries whose keys the log holds now (applying one unparks it)."""
        while held := [e for e in self.unlogged.values() if self.keylog.holds(e)]:
            try:
                await self.apply_entries(held)
            except FlameError as exc:
                log.info("keys the key log now holds wait: %s", exc.message)
                return

    async def get(self, username: str) -> Contact | None:
        return await contact_store.get_contact(self.ctx.db, username)

    async def all(self) -> list[Contact]:
        return await contact_store.list_contacts(self.ctx.db)

    def set_directory_state(self, state: str) -> None:
        if state != self.directory_state:
            self.directory_state = state
            self.ctx.events.publish(DirectoryStateChanged(state))

    # --- from the directory -------------------------------------------------------------------

    async def apply_entries(self, entries: list[DirectoryEntry]) -> None:
        """Pin or check keys, then record presence, and tell the UI what changed."""
        ctx = self.ctx
        now = ctx.clock.now()
        ttl = listed_ttl_s(ctx.settings.directory.presence_ttl_s)  # PROTOCOL.md §5.3
        before = {c.username: c for c in await self.all()}
        updates: list[PresenceUpdate] = []
        changed: list[PresenceChanged] = []
        online: list[str] = []
        versions: list[tuple[str, list[int], int]] = []  # from verified presence (§9)
        await self.keylog.vet(entries)
        for entry in entries:
            user = entry.user
            if user.username == ctx.me:
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
            pinned = before.get(user.username)
            self.unlogged.pop(user.username, None)
            if self.keylog.admits(user.username, identity_key, x25519_key):
                outcome = await contact_store.offer_keys(
                    ctx.db, user.username, identity_key, x25519_key, x25519_sig, now
                )
                if outcome.is_key_change:
                    log.warning(
                        "identity key of %s changed; refusing it until the user accepts",
                        user.username,
                    )
                    ctx.events.publish(KeyChanged(user.username))
            elif pinned is None:
                log.info("keys of %s are not in the directory's key log; not pinned", user.username)
                if len(self.unlogged) < UNKNOWN_USERS_MAX:
                    self.unlogged[user.username] = entry
                continue
            pinned_key = identity_key if pinned is None else pinned.identity_key
            presence = self.believed(entry.presence, user.username, pinned_key)
            if presence is not None:
                versions.append((user.username, list(presence.versions), presence.ts))
            status = effective_status(presence, now, ttl)
            address: str | None
            tls: bytes | None
            if presence is not None:
                address, tls = presence.address, self.endpoint_of(presence).tls
            else:
                address, tls = (None, None) if pinned is None else (pinned.address, pinned.tls)
            ts = presence.ts if presence is not None else None
            old_status = pinned.status if pinned is not None else "offline"
            if (
                pinned is None
                or old_status != status
                or (pinned.address, pinned.tls) != (address, tls)
            ):
                updates.append(PresenceUpdate(user.username, address, tls, status, ts))
            if old_status != status:
                changed.append(PresenceChanged(user.username, status))
                if status != "offline":
                    online.append(user.username)
        await contact_store.set_presence(ctx.db, updates)
        await self.negotiation.note_versions(versions)
        for event in changed:  # after the commit: a UI that reacts by asking sees the new state
            ctx.events.publish(event)
        await self.came_online(online)

    def endpoint_of(self, presence: PresenceRecord) -> Endpoint:
        """Raises ValueError: an address or fingerprint that does not parse (PROTOCOL.md §5.3)."""
        plain_http = self.ctx.settings.daemon.insecure_plain_http
        return endpoint(presence.address, presence.tls, presence.username, plain_http=plain_http)

    def believed(
        self, presence: PresenceRecord | None, username: str, pinned_key: bytes
    ) -> PresenceRecord | None:
        """The record if it is `username`'s, signed by the pinned key, with an address this
        daemon would dial; None (offline) otherwise."""
        if presence is None:
            return None
        if presence.username != username or not verify_presence(presence, pinned_key):
            return None  # unsigned by the pinned key: not believed
        try:
            self.endpoint_of(presence)
        except ValueError as exc:
            log.warning("presence of %s has an unusable address; ignored: %s", username, exc)
            return None
        return presence

    async def came_online(self, names: list[str]) -> None:
        """Peers just seen online: what waits for them goes now, not at the end of its backoff."""
        if names:
            await outbox_store.due_now(self.ctx.db, names)
            self.ctx.wake.outbox.set()
            self.ctx.wake.relay.set()

    async def fetch(self, username: str) -> Contact | None:
        """Ask the directory about one user (someone new wrote to us, or the UI named them).

        A name the directory does not know is remembered for a minute, so a stream of requests
        naming strangers cannot turn this daemon into a load on the directory.
        """
        now = self.ctx.clock.now()
        if self.unknown_users.get(username, 0.0) > now:
            return None
        try:
            entry = await self.client.directory_user(self.directory, username)
        except PeerRefused as exc:
            if exc.http_status == 404:
                if len(self.unknown_users) > UNKNOWN_USERS_MAX:
                    self.unknown_users.clear()
                self.unknown_users[username] = now + UNKNOWN_USER_TTL_S
            return None
        except FlameError:
            return None
        await self.apply_entries([entry])
        return await self.get(username)

    async def find(self, username: str, *, for_peer: bool = False) -> Contact | None:
        """A contact, asking the directory about one we do not know yet (only once unlocked:
        a locked daemon cannot sign the question).

        `for_peer`: a peer's request named this user (PROTOCOL.md §4.3, §12.5). Such questions
        share one small budget, so junk naming strangers cannot spend this daemon's allowance
        at the directory; over it, TooManyRequests (names already known not to exist cost
        nothing)."""
        contact = await self.get(username)
        if contact is None and username != self.ctx.me and self.ctx.keys.is_unlocked:
            now = self.ctx.clock.now()
            if self.unknown_users.get(username, 0.0) > now:
                return None
            if for_peer:
                wait = self.stranger_lookups.take("", now)
                if wait > 0:
                    seconds = self.stranger_lookups.retry_after_s(wait)
                    raise TooManyRequests(
                        f"This daemon is asking about too many unknown users; try again in "
                        f"{seconds} s.",
                        retry_after_s=seconds,
                    )
            contact = await self.fetch(username)
        return contact

    async def lookup_identity_key(self, username: str) -> bytes | None:
        """The pinned identity key of a caller (the remote API's signature checks)."""
        if not USERNAME_RE.fullmatch(username):
            return None
        contact = await self.find(username, for_peer=True)
        return None if contact is None else contact.identity_key

    async def recipient(self, peer: str) -> Contact:
        """The contact to send to: looked up in the directory on first use; refused while their
        key change is pending, or while this user blocks them."""
        self.ctx.keys.identity()
        contact = await self.find(peer)
        if contact is None:
            raise NotFound(
                f"There is no user named {peer!r} in the directory.", code="unknown_recipient"
            )
        if contact.key_changed:
            raise Conflict(
                f"{peer}'s identity key has changed. Compare the safety number with them, "
                "then accept the new key to send again.",
                code="key_changed",
            )
        if await self.blocks.is_blocked(peer):
            raise Conflict(f"You blocked {peer}. Unblock them to write to them.", code="blocked")
        return contact

    async def accept_key(self, username: str) -> Contact:
        """The user compared the safety number and accepts the contact's new key."""
        await contact_store.accept_pending_key(self.ctx.db, username, self.ctx.clock.now())
        # Their presence, refused while signed by the unaccepted key, is believed now: asked
        # again, since the directory sends an entry only when it changes (PROTOCOL.md §5.4).
        await self.fetch(username)
        contact = await self.get(username)
        if contact is None:
            raise NotFound(f"There is no contact named {username!r}.")
        return contact

    async def set_verified(self, username: str, verified: bool) -> Contact:
        """The user compared the safety number with the contact and confirms it (or takes that
        back); a later key change undoes it by itself (store/contacts.py)."""
        if not await contact_store.set_verified(self.ctx.db, username, verified):
            raise NotFound(f"There is no contact named {username!r}.", code="unknown_recipient")
        contact = await self.get(username)
        assert contact is not None
        return contact

    # --- degraded mode ------------------------------------------------------------------------

    async def probe_once(self) -> None:
        """While the directory does not answer (PROTOCOL.md §13.5): ask every known peer directly,
        with a signed hello, whether it is up; a peer answers for itself only if its identity key
        is the one we pinned. A blocked user is never asked: the hello would tell them we are up."""
        blocked = await self.blocks.names()
        known = [
            (c, e)
            for c in await self.all()
            if (e := c.endpoint) is not None and c.username not in blocked
        ]
        slots = asyncio.Semaphore(self.ctx.settings.daemon.probe_concurrency)

        async def probe(contact: Contact, peer: Endpoint) -> tuple[Contact, str]:
            async with slots:
                try:
                    hello = await self.client.hello(peer)
                except FlameError:
                    return contact, "offline"
            is_them = (
                hello.username == contact.username
                and not hello.locked
                and hello.identity_key == b64e(contact.identity_key)
            )
            return contact, "online" if is_them else "offline"

        results = await asyncio.gather(*(probe(c, e) for c, e in known))
        updates = [
            PresenceUpdate(c.username, c.address, c.tls, status, c.presence_ts)
            for c, status in results
            if status != c.status
        ]
        await contact_store.set_presence(self.ctx.db, updates)
        for update in updates:
            self.ctx.events.publish(PresenceChanged(update.username, update.status))
        await self.came_online([u.username for u in updates if u.status != "offline"])

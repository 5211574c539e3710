"""How a person is shown: name, profile, status, keys, blocked or not (PROTOCOL.md §12.1). The
contact list, profile pages, search results and events all take their people from here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from flame.core.crypto import fingerprint, safety_number
from flame.core.keylog import recent_change
from flame.store import contacts as contact_store
from flame.store import messages as message_store
from flame.store import profiles as profile_store
from flame.store import sessions as session_store
from flame.store.contacts import Contact
from flame.store.keylog import LoggedKey
from flame.store.messages import Message
from flame.store.profiles import StoredProfile

if TYPE_CHECKING:
    from flame.services.blocks import Blocks
    from flame.services.context import Context
    from flame.services.keylog import KeyLog
    from flame.services.negotiation import Negotiation
    from flame.services.status import StatusTracker


@dataclass(frozen=True, slots=True)
class Person:
    username: str
    is_me: bool
    known: bool  # this user, or a contact (pinned keys)
    profile: StoredProfile | None
    status: str
    blocked: bool
    fingerprint: str | None
    safety_number: str | None
    key_changed: bool
    # The protocol version a contact's conversation uses (PROTOCOL.md §14.2); None for others.
    protocol_version: int | None = None
    # When the version 2 session with a contact was last reset (PROTOCOL.md §14.9), or None.
    session_reset_at: float | None = None
    # The user compared the safety number of the key pinned now and confirmed it (§3.4).
    verified: bool = False
    # Their keys as the directory's key log has them, oldest first, and when the last rekey was
    # if it is recent (PROTOCOL.md §18.6).
    key_history: tuple[LoggedKey, ...] = ()
    key_changed_at: int | None = None


@dataclass(frozen=True, slots=True)
class ContactCard:
    """A row of the contact list."""

    person: Person
    unread: int
    last_message: Message | None


@dataclass(eq=False)
class People:
    ctx: Context
    blocks: Blocks
    status: StatusTracker
    negotiation: Negotiation
    keylog: KeyLog

    async def _versioned(self, person: Person) -> Person:
        """With what the key log and the negotiation say of them."""
        await self.keylog.load()
        history = tuple(self.keylog.history.get(person.username, ()))
        person = replace(
            person,
            key_history=history,
            key_changed_at=recent_change(
                [(e.kind, e.ts) for e in history], int(self.ctx.clock.now())
            ),
        )
        if not person.known or person.is_me:
            return person
        return replace(
            person,
            protocol_version=await self.negotiation.shown_version(person.username),
            session_reset_at=await session_store.reset_at(self.ctx.db, person.username),
        )

    def _person(
        self,
        username: str,
        contact: Contact | None,
        profile: StoredProfile | None,
        blocked: set[str],
    ) -> Person:
        mine = self.ctx.keys.account.identity_key
        if username == self.ctx.me:
            return Person(
                username, True, True, profile, self.status.current(), username in blocked,
                fingerprint(mine), None, False,
            )  # fmt: skip
        if contact is None:
            return Person(
                username, False, False, profile, "offline", username in blocked, None, None, False
            )
        return Person(
            username,
            False,
            True,
            profile,
            contact.status,
            username in blocked,
            fingerprint(contact.identity_key),
            safety_number(mine, contact.identity_key),
            contact.key_changed,
            verified=contact.is_verified,
        )

    async def person(self, username: str) -> Person:
        db = self.ctx.db
        contact = None if username == self.ctx.me else await contact_store.get_contact(db, username)
        profile = await profile_store.get_profile(db, username)
        return await self._versioned(
            self._person(username, contact, profile, await self.blocks.names())
        )

    async def people(self, usernames: list[str]) -> list[Person]:
        """Several at once (search results): one read of each table."""
        db = self.ctx.db
        profiles = await profile_store.profiles_of(db, usernames)
        contacts = {c.username: c for c in await contact_store.list_contacts(db)}
        blocked = await self.blocks.names()
        return [
            await self._versioned(
                self._person(name, contacts.get(name), profiles.get(name), blocked)
            )
            for name in usernames
        ]

    async def card(self, contact: Contact) -> ContactCard:
        db = self.ctx.db
        last = await message_store.list_messages(db, contact.username, before=None, limit=1)
        profile = await profile_store.get_profile(db, contact.username)
        person = await self._versioned(
            self._person(contact.username, contact, profile, await self.blocks.names())
        )
        unread = await message_store.unread_count(db, contact.username)
        return ContactCard(person, unread, last[0] if last else None)

    async def cards(self, *, with_blocked: bool) -> list[ContactCard]:
        """The contact list, by name; blocked people only when asked for (§12.4)."""
        cards = [await self.card(c) for c in await contact_store.list_contacts(self.ctx.db)]
        return [c for c in cards if with_blocked or not c.person.blocked]

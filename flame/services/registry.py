"""Every service of one daemon, as the composition root (daemon.py) wired them, and the holder the
inbound APIs reach them through. The loops take theirs from here; a service itself never reads
this: it was given what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from flame.clock import Clock
from flame.config import Settings
from flame.core.hello import FEATURES
from flame.core.keys import Account
from flame.core.transport import Endpoint
from flame.errors import LockedError
from flame.net.peer_client import PeerClient
from flame.services.actions import Actions
from flame.services.blocks import Blocks
from flame.services.contacts import Contacts
from flame.services.context import Context
from flame.services.delivery import Delivery
from flame.services.directory_sync import DirectorySync
from flame.services.features import PeerFeatures
from flame.services.files.chunks import Chunks
from flame.services.files.offers import Offers
from flame.services.files.runtime import FileRuntime
from flame.services.files.sender import Sender
from flame.services.files.uploads import Uploads
from flame.services.group_fetch import GroupFetch
from flame.services.group_files import GroupFiles
from flame.services.group_held import GroupHeld
from flame.services.group_inbox import GroupInbox
from flame.services.groups import Groups
from flame.services.inbox import Inbox
from flame.services.keylog import KeyLog
from flame.services.messaging import Messaging
from flame.services.negotiation import Negotiation
from flame.services.people import People
from flame.services.presence import Presence
from flame.services.profiles import Profiles
from flame.services.receipts import Receipts
from flame.services.relay import Relay
from flame.services.search import Search
from flame.services.sessions import Sessions
from flame.services.status import StatusTracker
from flame.services.typing import Typing


@dataclass(frozen=True, slots=True)
class Services:
    ctx: Context
    client: PeerClient
    blocks: Blocks
    status: StatusTracker
    people: People
    contacts: Contacts
    directory_sync: DirectorySync
    presence: Presence
    messaging: Messaging
    receipts: Receipts
    delivery: Delivery
    profiles: Profiles
    inbox: Inbox
    relay: Relay
    search: Search
    files: FileRuntime
    uploads: Uploads
    offers: Offers
    chunks: Chunks
    sender: Sender
    sessions: Sessions
    negotiation: Negotiation
    actions: Actions
    typing: Typing
    keylog: KeyLog
    groups: Groups
    group_files: GroupFiles
    group_fetch: GroupFetch
    group_held: GroupHeld

    @classmethod
    def build(cls, ctx: Context, client: PeerClient, directory: Endpoint) -> Services:
        """Each service gets what it uses; the order is the order of their dependencies."""
        blocks = Blocks(ctx)
        status = StatusTracker(ctx)
        negotiation = Negotiation(ctx)
        keylog = KeyLog(ctx, client, directory)
        client.key_log_head = keylog.header  # heads travel with every exchange (PROTOCOL.md §18.5)
        client.on_key_log_head = keylog.observe
        people = People(ctx, blocks, status, negotiation, keylog)
        contacts = Contacts(ctx, client, blocks, negotiation, directory, keylog)
        presence = Presence(ctx, client, contacts, status)
        sessions = Sessions(ctx, client, negotiation, directory)
        client.pair_key = negotiation.pair_key  # deniable requests to version 2 peers (§14.8)
        client.may_call = status.may_reach  # appearing offline, peers are not called (§12.2)
        messaging = Messaging(ctx, contacts, sessions, status)
        receipts = Receipts(ctx, sessions)
        profiles = Profiles(ctx, client, people, messaging, blocks, status)
        files = FileRuntime(ctx)
        offers = Offers(ctx, files, blocks, receipts)
        inbox = Inbox(ctx, contacts, blocks, receipts, sessions)
        actions = Actions(ctx, messaging, receipts, files)
        typing = Typing(ctx, client, sessions, status, blocks)
        inbox.receivers.update(
            {
                "receipt": receipts.receive,
                "profile_update": profiles.receive_updates,
                "file_offer": offers.receive_offers,
                "file_cancel": offers.receive_cancels,
                "file_decline": offers.receive_declines,
                "edit": actions.receive_edits,
                "delete": actions.receive_deletes,
                "reaction": actions.receive_reactions,
                "typing": typing.receive,
            }
        )
        features = PeerFeatures(ctx, client)
        groups = Groups(ctx, contacts, sessions, blocks, receipts, features)
        chunks = Chunks(ctx, files, blocks)
        uploads = Uploads(ctx, files, messaging, contacts, features)
        group_fetch = GroupFetch(ctx, files, chunks, client, blocks, contacts)
        group_inbox = GroupInbox(groups, contacts, offers, group_fetch.wake)
        inbox.receivers.update(
            {
                "group_ops": group_inbox.receive_ops,
                "group_text": group_inbox.receive_texts,
                "group_file": group_inbox.receive_files,  # PROTOCOL.md §19.7
            }
        )
        return cls(
            ctx=ctx,
            client=client,
            blocks=blocks,
            status=status,
            people=people,
            contacts=contacts,
            directory_sync=DirectorySync(contacts, client),
            presence=presence,
            messaging=messaging,
            receipts=receipts,
            delivery=Delivery(ctx, client, sessions.reset, status, blocks),
            profiles=profiles,
            inbox=inbox,
            relay=Relay(ctx, client, inbox, blocks),
            search=Search(ctx, people),
            files=files,
            uploads=uploads,
            offers=offers,
            chunks=chunks,
            sender=Sender(ctx, files, client, status, uploads.send_control),
            sessions=sessions,
            negotiation=negotiation,
            actions=actions,
            typing=typing,
            keylog=keylog,
            groups=groups,
            group_files=GroupFiles(groups, uploads, files),
            group_fetch=group_fetch,
            group_held=GroupHeld(groups),
        )


LOCKED_MESSAGE = "This daemon is locked; its user has not logged in."


@dataclass(eq=False)
class ServiceHolder:
    """What the apps hold instead of the services: a locked daemon has none (its database is
    encrypted under a key that only the password unseals), so before the first login, and after
    a lock, there is nothing to build them on. `services` is the one check: LockedError, which
    peers see as 503 `locked` with Retry-After (the UI's routes need a session, and there is
    none before a login). What a locked daemon still needs is here too."""

    settings: Settings
    clock: Clock
    account: Account  # from the keystore record, outside the database
    current: Services | None = None
    # What this daemon's hello advertises (PROTOCOL.md §9): every feature it implements.
    features: tuple[str, ...] = tuple(FEATURES)

    @property
    def services(self) -> Services:
        if self.current is None:
            raise LockedError(LOCKED_MESSAGE)
        return self.current

    @property
    def is_unlocked(self) -> bool:
        return self.current is not None and self.current.ctx.keys.is_unlocked

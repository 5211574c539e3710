"""Live events for the browser: one typed class per kind of event, and the hub that fans them out
to every open UI WebSocket (bounded queues; a laggard is dropped and reconnects).

Events carry domain objects; api/ui/views.py turns each into the JSON of docs/UI_API.md.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, dataclass_transform

from flame.services.people import Person
from flame.store.files import Transfer
from flame.store.groups import Copy, GroupCard, GroupMessage
from flame.store.keylog import Alarm
from flame.store.messages import Message

log = logging.getLogger("flame.events")


@dataclass_transform(frozen_default=True)
class Event:
    """A frozen dataclass per kind; `type` names it on the WebSocket (docs/UI_API.md)."""

    type: ClassVar[str]

    def __init_subclass__(cls, *, kind: str, **options: Any) -> None:
        super().__init_subclass__(**options)
        cls.type = kind
        dataclass(frozen=True, slots=False)(cls)


class MessageAdded(Event, kind="message"):
    """A message arrived, or this user sent one (from any tab)."""

    message: Message
    transfer: Transfer | None = None


class MessageStateChanged(Event, kind="message_state"):
    """An outgoing message moved along core/states.py's line (or failed, with the reason)."""

    message_id: str
    peer: str
    state: str
    error: str | None


class MessageChanged(Event, kind="message_changed"):
    """A message was edited, deleted for everyone (now a tombstone) or reacted to, here or by
    the peer (PROTOCOL.md §17)."""

    message: Message


class MessageRemoved(Event, kind="message_removed"):
    """This user deleted a message for themself (from any tab): it is no longer shown."""

    message_id: str
    peer: str


class ActionFailed(Event, kind="action_failed"):
    """An edit, delete or reaction of this user's did not reach the peer: refused for good, or
    expired (the reason says which)."""

    peer: str
    target: str
    kind: str
    error: str


class TypingChanged(Event, kind="typing"):
    """A contact is writing to this user (or stopped): shown for `expires_in_s` unless renewed
    (PROTOCOL.md §17.5)."""

    username: str
    typing: bool
    expires_in_s: float


class PresenceChanged(Event, kind="presence"):
    """A contact's status changed, from their signed presence or a probe."""

    username: str
    status: str


class KeyChanged(Event, kind="key_change"):
    """A contact's identity key changed: sending to them stops until the user accepts it
    (PROTOCOL.md §3.5)."""

    username: str


class SessionReset(Event, kind="session_reset"):
    """The version 2 session with a contact broke (one side lost its state) and a new one is
    starting; what did not open is sent again (PROTOCOL.md §14.9)."""

    username: str


class VersionChanged(Event, kind="version"):
    """The protocol version a conversation shows changed: the contact's Flame turned out to be
    older (1), or newer than we knew (2) (PROTOCOL.md §14.2)."""

    username: str
    version: int


class KeyLogAlarmRaised(Event, kind="key_log_alarm"):
    """The directory's key log failed a check, or shows this user rekeyed by someone else
    (PROTOCOL.md §18.4, §18.5)."""

    alarm: Alarm


class DirectoryStateChanged(Event, kind="directory"):
    """The directory stopped answering (`degraded`) or came back (`ok`)."""

    state: str


class MyStatusChanged(Event, kind="my_status"):
    """This user's status: what they chose, and what the presence says now (away when idle;
    PROTOCOL.md §12.2)."""

    choice: str
    status: str


class ProfileChanged(Event, kind="profile"):
    """This user's profile, or a contact's (pushed or fetched, verified)."""

    person: Person


class ProfileRejected(Event, kind="profile_rejected"):
    """A contact's daemon sent a profile that does not verify; it was ignored."""

    username: str
    reason: str


class BlockChanged(Event, kind="blocked"):
    """This user blocked or unblocked someone (from any tab)."""

    username: str
    blocked: bool


class FileStateChanged(Event, kind="file_state"):
    """A transfer changed state, in either direction."""

    transfer: Transfer


class FileProgress(Event, kind="file_progress"):
    """Bytes moved: at most every 250 ms per transfer, and at the end of a phase."""

    transfer: Transfer
    phase: str  # "upload" | "send" | "receive"
    done_bytes: int
    rate_bps: float
    eta_s: float | None


class GroupChanged(Event, kind="group"):
    """A group's membership, name or picture changed (this user's change or a member's)."""

    card: GroupCard


class GroupMessageAdded(Event, kind="group_message"):
    """A group message arrived, or this user sent one (with its copies, PROTOCOL.md §19.5)."""

    message: GroupMessage
    copies: tuple[Copy, ...] = ()
    file: Transfer | None = None  # the file it carries (PROTOCOL.md §19.7)


EVENT_TYPES: tuple[type[Event], ...] = (
    MessageAdded,
    MessageStateChanged,
    MessageChanged,
    MessageRemoved,
    ActionFailed,
    TypingChanged,
    PresenceChanged,
    KeyChanged,
    SessionReset,
    VersionChanged,
    DirectoryStateChanged,
    KeyLogAlarmRaised,
    MyStatusChanged,
    ProfileChanged,
    ProfileRejected,
    BlockChanged,
    FileStateChanged,
    FileProgress,
    GroupChanged,
    GroupMessageAdded,
)

Feed = asyncio.Queue[Event | None]  # None: the feed ends (shutdown, or this reader fell behind)


class Events:
    def __init__(self, queue_size: int = 20_000) -> None:
        self.queue_size = queue_size
        self.subscribers: set[Feed] = set()

    def subscribe(self) -> Feed:
        queue: Feed = asyncio.Queue(self.queue_size)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: Feed) -> None:
        self.subscribers.discard(queue)

    def publish(self, event: Event) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A client this far behind is better off reconnecting and refetching.
                log.warning("a UI client fell behind; closing its feed")
                self.subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)

    def close_all(self) -> None:
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self.subscribers.clear()

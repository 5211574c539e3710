"""Live events for the browser: one typed class per kind of event, and the hub that fans them out
to every open UI WebSocket (bounded queues; a laggard is dropped and reconnects).

Events carry domain objects; api/ui/views.py turns each into the JSON of docs/UI_API.md.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import ClassVar

from flame.services.people import Person
from flame.store.files import Transfer
from flame.store.messages import Message

log = logging.getLogger("flame.events")


class Event:
    type: ClassVar[str]


@dataclass(frozen=True, slots=True)
class MessageAdded(Event):
    """A message arrived, or this user sent one (from any tab)."""

    type: ClassVar[str] = "message"
    message: Message
    transfer: Transfer | None = None


@dataclass(frozen=True, slots=True)
class MessageStateChanged(Event):
    type: ClassVar[str] = "message_state"
    message_id: str
    peer: str
    state: str
    error: str | None


@dataclass(frozen=True, slots=True)
class PresenceChanged(Event):
    type: ClassVar[str] = "presence"
    username: str
    status: str


@dataclass(frozen=True, slots=True)
class KeyChanged(Event):
    type: ClassVar[str] = "key_change"
    username: str


@dataclass(frozen=True, slots=True)
class DirectoryStateChanged(Event):
    type: ClassVar[str] = "directory"
    state: str


@dataclass(frozen=True, slots=True)
class MyStatusChanged(Event):
    type: ClassVar[str] = "my_status"
    choice: str
    status: str


@dataclass(frozen=True, slots=True)
class ProfileChanged(Event):
    type: ClassVar[str] = "profile"
    person: Person


@dataclass(frozen=True, slots=True)
class ProfileRejected(Event):
    type: ClassVar[str] = "profile_rejected"
    username: str
    reason: str


@dataclass(frozen=True, slots=True)
class BlockChanged(Event):
    type: ClassVar[str] = "blocked"
    username: str
    blocked: bool


@dataclass(frozen=True, slots=True)
class FileStateChanged(Event):
    type: ClassVar[str] = "file_state"
    transfer: Transfer


@dataclass(frozen=True, slots=True)
class FileProgress(Event):
    type: ClassVar[str] = "file_progress"
    transfer: Transfer
    phase: str  # "upload" | "send" | "receive"
    done_bytes: int
    rate_bps: float
    eta_s: float | None


EVENT_TYPES: tuple[type[Event], ...] = (
    MessageAdded,
    MessageStateChanged,
    PresenceChanged,
    KeyChanged,
    DirectoryStateChanged,
    MyStatusChanged,
    ProfileChanged,
    ProfileRejected,
    BlockChanged,
    FileStateChanged,
    FileProgress,
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

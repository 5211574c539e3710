"""The directory's pushes (PROTOCOL.md §5.5): each process holds its subscribers' WebSockets and,
whenever the head moves (a change here, or with PostgreSQL a NOTIFY from another process), reads
the changes once and sends the same frame to every subscriber. A subscriber that falls behind
is dropped (it catches up by cursor when it comes back); nobody waits for a slow one."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from flame.core.changes import DirectoryChanges
from flame.directory.store import Changes, DirectoryStore
from flame.errors import FlameError

log = logging.getLogger("flame.directory")
QUEUE_FRAMES = 64  # frames a subscriber may have waiting before it is dropped
RETRY_S = 1.0  # after the database failed to answer


def frame_of(changes: Changes) -> str:
    return DirectoryChanges(
        since=changes.since, cursor=changes.cursor, users=changes.entries
    ).model_dump_json()


@dataclass(eq=False)
class Subscriber:
    username: str
    frames: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_FRAMES + 1)
    )

    def offer(self, frame: str | None) -> bool:
        """Queue `frame`; False (and the subscriber told to go) when it is too far behind."""
        if self.frames.qsize() >= QUEUE_FRAMES:
            self.frames.put_nowait(None)
            return False
        self.frames.put_nowait(frame)
        return True


@dataclass(eq=False)
class Hub:
    store: DirectoryStore
    head: int = 0  # what every subscriber has been sent (or told at its start)
    subscribers: set[Subscriber] = field(default_factory=set)
    target: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pushed: int = 0  # frames sent so far (the bench and the tests count them)

    async def start(self) -> None:
        self.head = self.target = await self.store.head()
        self.store.listeners.append(self.changed)

    def changed(self, head: int) -> None:
        if head > self.target:
            self.target = head
            self.wake.set()

    def join(self, username: str) -> tuple[Subscriber, str]:
        """A new subscriber, and its first frame: the cursor it starts from, nothing changed."""
        subscriber = Subscriber(username)
        self.subscribers.add(subscriber)
        return subscriber, frame_of(Changes(self.head, self.head, []))

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.target <= self.head:
                continue
            try:
                changes = await self.store.changes(self.head)
            except FlameError as exc:
                log.warning("directory pushes wait: %s", exc.message)
                await asyncio.sleep(RETRY_S)
                self.wake.set()
                continue
            self.target = max(self.target, changes.cursor)
            if changes.cursor <= self.head:
                continue
            frame = frame_of(changes)
            self.head = changes.cursor
            for subscriber in list(self.subscribers):
                if not subscriber.offer(frame):
                    self.subscribers.discard(subscriber)
            self.pushed += 1

    def close_all(self) -> None:
        for subscriber in self.subscribers:
            if not subscriber.frames.full():
                subscriber.frames.put_nowait(None)
        self.subscribers.clear()

"""Keeping the contacts in step with the directory by cursor (PROTOCOL.md §5.4, §5.5): the pushed
frames of one long-lived subscription, and the poll as the fallback. A first sync asks for
everything (cursor 0); after it only what changed comes, pushed or polled. A cursor the directory
refuses (its database was replaced) starts over from 0."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp

from flame.core.changes import DirectoryChanges
from flame.errors import FlameError, PeerRefused
from flame.net.peer_client import PeerClient
from flame.net.subscription import parse_frame, subscribe
from flame.services.contacts import Contacts

log = logging.getLogger("flame.contacts")


@dataclass(eq=False)
class DirectorySync:
    contacts: Contacts
    client: PeerClient
    cursor: int = field(default=0, init=False)  # the directory's head this daemon has applied
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    frames: int = field(default=0, init=False)  # pushed frames applied (tests count them)

    async def sync_once(self) -> None:
        """Ask for the changes since the cursor (all of them the first time) and apply them."""
        async with self.lock:
            try:
                changes = await self.client.directory_changes(self.contacts.directory, self.cursor)
            except PeerRefused as exc:
                if exc.code != "bad_cursor":
                    raise
                log.info("the directory refused cursor %d; syncing everything", self.cursor)
                changes = await self.client.directory_changes(self.contacts.directory, 0)
                self.cursor = 0
            await self._apply(changes)
        self.contacts.synced.set()

    async def _apply(self, changes: DirectoryChanges) -> None:
        if changes.users:
            await self.contacts.apply_entries(changes.users)
        self.cursor = changes.cursor

    async def apply_frame(self, frame: DirectoryChanges) -> None:
        """A pushed frame that starts at or before our cursor completes what we hold; one that
        starts after it means we missed some, which a sync by cursor fetches."""
        async with self.lock:
            if frame.since <= self.cursor:
                if frame.cursor > self.cursor:
                    await self._apply(frame)
                    self.frames += 1
                return
        await self.sync_once()

    async def subscribe_once(self) -> None:
        """One subscription, until it ends (the directory stops, or the connection drops)."""
        ws = await subscribe(self.client, self.contacts.directory)
        try:
            self.subscribed.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                try:
                    frame = parse_frame(message.data)
                except FlameError:
                    log.warning("the directory pushed a frame that does not parse; resubscribing")
                    break
                await self.apply_frame(frame)
        finally:
            self.subscribed.clear()
            await ws.close()

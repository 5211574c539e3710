"""What every service reads: settings, the store, time, this user's keys, the UI's event feed, and
the wake-ups of the delivery loops. Built once by the composition root (daemon.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flame.clock import Clock
from flame.config import Settings
from flame.core.keys import Keys
from flame.services.events import Events
from flame.store.db import Database


@dataclass(frozen=True, slots=True)
class Wakeups:
    """Set when there is new work for a loop: the outbox (something to deliver),
    store-and-forward (someone came online, or a deposit arrived) and receipts (delivered
    receipts are owed, PROTOCOL.md §13.2)."""

    outbox: asyncio.Event = field(default_factory=asyncio.Event)
    relay: asyncio.Event = field(default_factory=asyncio.Event)
    receipts: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    db: Database
    clock: Clock
    keys: Keys
    events: Events
    wake: Wakeups = field(default_factory=Wakeups)

    @property
    def me(self) -> str:
        return self.keys.username

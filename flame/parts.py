"""Parts: what the daemon's handlers and tasks share, built once by the composition root."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from flame.clock import Clock
from flame.config import Settings
from flame.core.crypto import Identity
from flame.core.models import Status
from flame.errors import LockedError
from flame.hub import Hub
from flame.net.http import RequestVerifier
from flame.net.peer_client import PeerClient
from flame.store.db import Database
from flame.store.keystore import Account
from flame.transfers.runtime import FileRuntime


@dataclass
class Parts:
    settings: Settings
    db: Database
    account: Account
    client: PeerClient
    hub: Hub
    clock: Clock
    verifier: RequestVerifier
    directory_url: str
    identity: Identity | None = None
    directory_state: str = "unknown"  # "ok" | "degraded" | "unknown"
    wake_outbox: asyncio.Event = field(default_factory=asyncio.Event)
    wake_relay: asyncio.Event = field(default_factory=asyncio.Event)
    synced: asyncio.Event = field(default_factory=asyncio.Event)  # first directory sync done
    unlocked: asyncio.Event = field(default_factory=asyncio.Event)
    public_address: str = ""
    unknown_users: dict[str, float] = field(default_factory=dict)  # name -> retry after
    outgoing: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)  # messaging.PendingSend
    # This user's status (flame/status.py, core/status.py): the choice and what it depends on.
    status_choice: Status = "online"
    last_activity: float = 0.0
    ui_sessions: int = 0
    ui_last_seen: float = 0.0
    reported_status: Status | None = None
    wake_presence: asyncio.Event = field(default_factory=asyncio.Event)
    blocked: set[str] | None = None  # flame/blocks.py's cache of the blocks table
    profile_requests: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # profiles.py
    decryptions: int = 0  # envelopes this daemon tried to open (tests prove blocks cost none)
    files: FileRuntime = field(default_factory=FileRuntime)  # transfers in flight (PROTOCOL.md §11)

    @property
    def me(self) -> str:
        return self.account.username

    def require_identity(self) -> Identity:
        if self.identity is None:
            raise LockedError("This daemon is locked: log in to the UI to unlock it.")
        return self.identity

    def set_directory_state(self, state: str) -> None:
        if state != self.directory_state:
            self.directory_state = state
            self.hub.publish({"type": "directory", "state": state})

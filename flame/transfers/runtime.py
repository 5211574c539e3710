"""What file transfers share in memory within one daemon. No imports of the rest of flame: Parts
holds one of these."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

# A transfer is named by (peer, direction, transfer_id) everywhere (store.files.Transfer.key).
Key = tuple[str, str, str]


@dataclass
class Intake:
    """An incoming transfer's running SHA-256 over its verified prefix, kept between requests so
    that a resumed transfer need not hash its prefix again (unless the daemon restarted)."""

    hasher: Any  # hashlib's sha256 object
    hashed_bytes: int


@dataclass
class FileRuntime:
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # the sending loop looks again
    pushes: dict[Key, asyncio.Task[None]] = field(default_factory=dict)  # attempts in flight
    uploads: dict[Key, asyncio.Event] = field(default_factory=dict)  # set: stop that upload
    intakes: dict[Key, Intake] = field(default_factory=dict)
    receiving: set[Key] = field(default_factory=set)  # incoming with a chunk request running

    def stop(self, key: Key) -> None:
        """Stop whatever runs for this transfer (its state in the database already says why).
        A browser upload is a request handler: it is asked to stop, not cancelled."""
        task = self.pushes.get(key)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        upload = self.uploads.get(key)
        if upload is not None:
            upload.set()
        self.intakes.pop(key, None)

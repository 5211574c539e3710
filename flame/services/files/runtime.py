"""What file transfers share within one daemon: what runs for each (pushes, uploads, incoming
requests, running hashes), how a transfer closes, and the events its UIs get."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flame.core.files import ProgressMeter
from flame.core.states import OPEN_STATES
from flame.services.context import Context
from flame.services.events import FileProgress, FileStateChanged
from flame.services.files.disk import remove_files
from flame.store import files as file_store
from flame.store.files import Transfer

# A transfer is named by (peer, direction, transfer_id) everywhere (store.files.Transfer.key).
Key = tuple[str, str, str]


@dataclass
class Intake:
    """An incoming transfer's running SHA-256 over its verified prefix, kept between requests so
    that a resumed transfer need not hash its prefix again (unless the daemon restarted)."""

    hasher: Any  # hashlib's sha256 object
    hashed_bytes: int
    trailer: bytes | None = None  # the hash that trailed a streamed file's chunks (§11.4)


@dataclass(eq=False)
class Growing:
    """An upload being streamed to the peer as it arrives (PROTOCOL.md §11.4): how many of its
    chunks are stored (sealed, at rest), and its SHA-256 once the last has come."""

    chunks: int = 0
    sha256: bytes | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def stored(self, chunks: int, sha256: bytes | None = None) -> None:
        self.chunks, self.sha256 = chunks, sha256
        self.changed.set()

    async def until(self, chunks: int) -> None:
        """Until at least `chunks` chunks are stored."""
        await self._wait(lambda: self.chunks >= chunks)

    async def digest(self) -> bytes:
        """The whole file's SHA-256, once the upload has ended."""
        await self._wait(lambda: self.sha256 is not None)
        assert self.sha256 is not None
        return self.sha256

    async def _wait(self, done: Callable[[], bool]) -> None:
        while not done():
            self.changed.clear()
            await self.changed.wait()


@dataclass(eq=False)
class FileRuntime:
    ctx: Context
    # The sending loop looks again.
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # Attempts in flight.
    pushes: dict[Key, asyncio.Task[None]] = field(default_factory=dict, init=False)
    # Set: stop that upload.
    uploads: dict[Key, asyncio.Event] = field(default_factory=dict, init=False)
    # Uploads whose chunks go to the peer while they arrive.
    growing: dict[Key, Growing] = field(default_factory=dict, init=False)
    intakes: dict[Key, Intake] = field(default_factory=dict, init=False)
    # Incoming with a chunk request running.
    receiving: set[Key] = field(default_factory=set, init=False)

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

    def publish(self, transfer: Transfer) -> None:
        self.ctx.events.publish(FileStateChanged(transfer))

    async def publish_current(self, key: Key) -> None:
        current = await file_store.get(self.ctx.db, *key)
        if current is not None:
            self.publish(current)

    async def close(
        self,
        key: Key,
        state: str,
        reason: str | None,
        *,
        only_from: tuple[str, ...] = OPEN_STATES,
    ) -> bool:
        """Close an open transfer: stop what runs for it, delete its bytes, tell the UI."""
        ctx = self.ctx
        if not await file_store.close(
            ctx.db, key, state, reason, ctx.clock.now(), only_from=only_from
        ):
            return False
        self.stop(key)
        transfer = await file_store.get(ctx.db, *key)
        if transfer is not None:
            remove_files(ctx.settings, transfer)
            self.publish(transfer)
        return True

    def progress(self, transfer: Transfer, phase: str, start_bytes: int) -> Progress:
        return Progress(self.ctx, transfer, phase, start_bytes)


class Progress:
    """Feeds a meter and publishes `file_progress` at most every 250 ms, and at the end."""

    def __init__(self, ctx: Context, transfer: Transfer, phase: str, start_bytes: int) -> None:
        self.ctx, self.transfer, self.phase = ctx, transfer, phase
        now = asyncio.get_running_loop().time()
        self.meter = ProgressMeter(transfer.size, now)
        self.meter.update(now, start_bytes)

    def update(self, done_bytes: int, *, final: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        self.meter.update(now, done_bytes)
        if self.meter.due(now) or final:
            eta = self.meter.eta_s()
            self.ctx.events.publish(
                FileProgress(
                    self.transfer,
                    self.phase,
                    done_bytes,
                    self.meter.rate_bps(),
                    None if eta is None else round(eta, 1),
                )
            )

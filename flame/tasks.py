"""Background loops of the daemon and their supervisor.

Each loop wraps a testable step (`sync_directory_once`, `deliver_to_peer`, ...); intervals come
from the settings, so tests use small ones. No loop blocks the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from flame import status
from flame.clock import wait_event
from flame.core.models import PROTOCOL_VERSIONS
from flame.core.presence import make_presence
from flame.delivery import deliver_to_peer, deposit_once, expire_once
from flame.errors import FlameError
from flame.messaging import write_outgoing
from flame.parts import Parts
from flame.profiles import sync_profiles
from flame.relay import collect_once, forward_once
from flame.roster import probe_once, sync_directory_once
from flame.store import outbox as outbox_store
from flame.transfers.outgoing import send_files

log = logging.getLogger("flame.tasks")

LoopFactory = Callable[[Parts], Awaitable[None]]


async def report_presence_once(parts: Parts) -> None:
    identity = parts.require_identity()
    record = make_presence(
        identity,
        parts.me,
        parts.public_address,
        status.current(parts),  # what the user chose, or away when idle (PROTOCOL.md §12.2)
        list(PROTOCOL_VERSIONS),
        int(parts.clock.now()),
    )
    await parts.client.report_presence(parts.directory_url, record)


async def report_presence(parts: Parts) -> None:
    """Report signed presence every presence_interval_s, and at once when the status changes;
    a failed report means degraded mode."""
    interval = parts.settings.daemon.presence_interval_s
    await status.load(parts)
    while True:
        try:
            await report_presence_once(parts)
        except FlameError as exc:
            if parts.directory_state != "degraded":
                log.warning("directory unreachable, working from cache: %s", exc.message)
            parts.set_directory_state("degraded")
        else:
            parts.set_directory_state("ok")
        await status.wait(parts, interval)


async def sync_directory(parts: Parts) -> None:
    """Keep the cached user list and presence fresh (conditional GET with the last ETag)."""
    etag: str | None = None
    interval = parts.settings.daemon.directory_sync_s
    while True:
        try:
            etag = await sync_directory_once(parts, etag)
        except FlameError as exc:
            log.debug("directory sync failed: %s", exc.message)
        else:
            parts.synced.set()
        await parts.clock.sleep(interval)


async def deliver_outbox(parts: Parts) -> None:
    """Run one delivery worker per peer with due envelopes (one batch in flight per peer keeps
    order); sleep until the next entry is due or until something wakes the outbox."""
    running: dict[str, asyncio.Task[int]] = {}

    def finished(peer: str, task: asyncio.Task[int]) -> None:
        running.pop(peer, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery to %s crashed", peer, exc_info=task.exception())
        parts.wake_outbox.set()

    try:
        while True:
            parts.wake_outbox.clear()
            now = parts.clock.now()
            next_due: float | None = None
            for peer, due in await outbox_store.outbox_peers(parts.db):
                if peer in running:
                    continue
                if due <= now:
                    task = asyncio.create_task(deliver_to_peer(parts, peer), name=f"deliver:{peer}")
                    running[peer] = task
                    task.add_done_callback(functools.partial(finished, peer))
                else:
                    next_due = due if next_due is None else min(next_due, due)
            timeout = None if next_due is None else max(0.0, next_due - now)
            await wait_event(parts.wake_outbox, timeout)
    finally:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)


async def store_and_forward(parts: Parts) -> None:
    """Deposit long-undelivered envelopes with relays, hand over what we hold for others, and
    expire what waited too long. Woken early when someone comes online."""
    settings = parts.settings.daemon
    interval = max(0.05, min(settings.relay_after_s or 1.0, settings.relay_retry_s, 5.0) / 2)
    while True:
        parts.wake_relay.clear()
        try:
            await deposit_once(parts)
            await forward_once(parts)
            await expire_once(parts)
        except FlameError as exc:
            log.info("store-and-forward round incomplete: %s", exc.message)
        await wait_event(parts.wake_relay, interval)


async def collect_from_relays(parts: Parts) -> None:
    """At start (once the directory, or the probes, say who is online) and then now and again:
    ask online peers for envelopes held for us."""
    await wait_event(parts.synced, parts.settings.daemon.probe_interval_s)
    while True:
        count = await collect_once(parts)
        if count:
            log.info("collected %d envelopes held by relays", count)
        await parts.clock.sleep(parts.settings.daemon.relay_retry_s)


async def probe_peers(parts: Parts) -> None:
    """While the directory is unreachable, learn who is up by asking them (signed hello)."""
    while True:
        if parts.directory_state == "degraded":
            await probe_once(parts)
        await parts.clock.sleep(parts.settings.daemon.probe_interval_s)


LOOPS: dict[str, LoopFactory] = {
    "report_presence": report_presence,
    "sync_directory": sync_directory,
    "deliver_outbox": deliver_outbox,
    "write_outgoing": write_outgoing,
    "store_and_forward": store_and_forward,
    "collect_from_relays": collect_from_relays,
    "probe_peers": probe_peers,
    "sync_profiles": sync_profiles,
    "send_files": send_files,
}


class Supervisor:
    """Starts each named loop; a loop that dies is logged and restarted with backoff."""

    def __init__(self, parts: Parts, loops: dict[str, LoopFactory]) -> None:
        self.parts = parts
        self.loops = loops
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, loop in self.loops.items():
            self.tasks.append(asyncio.create_task(self._keep(name, loop), name=name))

    async def _keep(self, name: str, loop: LoopFactory) -> None:
        delay = 0.5
        while True:
            try:
                await loop(self.parts)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed; restarting in %.1f s", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        """Cancel every loop and wait for it; a loop that ignores one cancellation gets another."""
        pending = set(self.tasks)
        for _ in range(20):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        for task in pending:
            log.error("background task %s would not stop", task.get_name())
        self.tasks.clear()

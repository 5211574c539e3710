"""The daemon's background loops and their supervisor.

Each loop calls one service (its testable `*_once` step, or the service's own loop where it keeps
workers of its own); intervals come from the settings, so tests use small ones. No loop blocks
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from flame.clock import wait_event
from flame.errors import FlameError
from flame.services.registry import Services

log = logging.getLogger("flame.tasks")

Loop = Callable[[], Awaitable[None]]
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
SUBSCRIBE_FIRST_S = 0.1  # the first wait before subscribing again
PREKEYS_CHECK_S = 60.0  # how often the one-time keys left at the directory are counted


def loops(services: Services) -> dict[str, Loop]:
    ctx = services.ctx
    settings = ctx.settings.daemon

    async def report_presence() -> None:
        """Signed presence every presence_interval_s, and at once when the status changes (the
        choice was loaded at unlock)."""
        while True:
            await services.presence.report_once()
            await services.status.wait(settings.presence_interval_s)

    async def sync_directory() -> None:
        """Keep the cached user list and presence fresh: what changed since the last cursor
        (PROTOCOL.md §5.4); the fallback of the pushes below."""
        while True:
            try:
                await services.directory_sync.sync_once()
            except FlameError as exc:
                log.debug("directory sync failed: %s", exc.message)
            await ctx.clock.sleep(settings.directory_sync_s)

    async def subscribe_directory() -> None:
        """Presence and key changes pushed within a second (PROTOCOL.md §5.5), over one signed
        subscription; when it drops, a sync by cursor catches up and it comes back, at once the
        first time, then with backoff up to directory_sync_s."""
        delay = SUBSCRIBE_FIRST_S
        while True:
            try:
                await services.directory_sync.subscribe_once()
                delay = SUBSCRIBE_FIRST_S
                await services.directory_sync.sync_once()
            except FlameError as exc:
                log.debug("directory subscription: %s", exc.message)
            await ctx.clock.sleep(delay)
            delay = min(delay * 2, settings.directory_sync_s)

    async def store_and_forward() -> None:
        """Deposit long-undelivered envelopes with relays, hand over what we hold for others, and
        expire what waited too long. Woken early when someone comes online."""
        interval = max(0.05, min(settings.relay_after_s or 1.0, settings.relay_retry_s, 5.0) / 2)
        while True:
            ctx.wake.relay.clear()
            try:
                await services.delivery.deposit_once()
                if not services.status.is_hidden:  # a hand-over would show we are up
                    await services.relay.forward_once()
                await services.delivery.expire_once()
            except FlameError as exc:
                log.info("store-and-forward round incomplete: %s", exc.message)
            await wait_event(ctx.wake.relay, interval)

    async def collect_from_relays() -> None:
        """At start (once the directory, or the probes, say who is online) and then now and
        again: ask online peers for envelopes held for us."""
        await wait_event(services.contacts.synced, settings.probe_interval_s)
        while True:
            if not services.status.is_hidden:  # appearing offline, nobody is asked (§12.2)
                count = await services.relay.collect_once()
                if count:
                    log.info("collected %d envelopes held by relays", count)
            await ctx.clock.sleep(settings.relay_retry_s)

    async def publish_prekeys() -> None:
        """Version 2: prekeys at the directory, published at start and refilled when low
        (PROTOCOL.md §14.3)."""
        while True:
            try:
                await services.sessions.prekeys_once()
            except FlameError as exc:
                log.info("prekeys not published: %s", exc.message)
            await ctx.clock.sleep(max(settings.directory_sync_s, PREKEYS_CHECK_S))

    async def probe_peers() -> None:
        """While the directory is unreachable, learn who is up by asking them (signed hello)."""
        while True:
            if services.contacts.directory_state == "degraded" and not services.status.is_hidden:
                await services.contacts.probe_once()
            await ctx.clock.sleep(settings.probe_interval_s)

    return {
        "report_presence": report_presence,
        "sync_directory": sync_directory,
        "subscribe_directory": subscribe_directory,
        "deliver_outbox": services.delivery.run,
        "send_receipts": services.receipts.send_owed,  # PROTOCOL.md §13.2
        "write_outgoing": services.messaging.write_outgoing,
        "write_group_messages": services.groups.write_outgoing,  # PROTOCOL.md §19.5
        "store_and_forward": store_and_forward,
        "collect_from_relays": collect_from_relays,
        "probe_peers": probe_peers,
        "publish_prekeys": publish_prekeys,
        "check_key_log": services.keylog.run,  # PROTOCOL.md §18.4, §18.5
        "sync_profiles": services.profiles.sync,
        "send_files": services.sender.send_files,
        "fetch_group_files": services.group_fetch.fetch_group_files,  # PROTOCOL.md §19.7
    }


class Supervisor:
    """Starts each named loop; a loop that dies is logged and restarted with growing backoff
    (RESTART_FIRST_S, doubling up to RESTART_MAX_S), so a loop that crashes at once on every start
    restarts at most once every RESTART_MAX_S once the delay has grown. A loop that ran for longer
    than RESTART_MAX_S before it died starts again from the first delay. `sleep` waits between
    restarts (tests pass one that records the delays)."""

    def __init__(
        self,
        loops: dict[str, Loop],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.loops = loops
        self.sleep = sleep
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, loop in self.loops.items():
            self.tasks.append(asyncio.create_task(self._keep(name, loop), name=name))

    async def _keep(self, name: str, loop: Loop) -> None:
        clock = asyncio.get_running_loop().time
        delay = RESTART_FIRST_S
        while True:
            started = clock()
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if clock() - started > RESTART_MAX_S:
                    delay = RESTART_FIRST_S  # it had been running well: a new failure
                log.exception("background task %s crashed; restarting in %.1f s", name, delay)
                await self.sleep(delay)
                delay = min(delay * 2, RESTART_MAX_S)

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

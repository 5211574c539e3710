"""The composition root of `flame serve`: settings -> store -> keys -> client -> services -> apps
-> loops. The only place that builds them; it owns start-up and shutdown (reverse order).

A locked daemon (no password yet) serves hello and the UI login, answers envelopes with 503
`locked` (senders keep them queued), and reports no presence, so peers see it offline. Logging in
to the UI unlocks it and starts the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

from flame import tasks
from flame.api import peer as peer_api
from flame.api import ui as ui_api
from flame.api.ui.guard import UiOrigin
from flame.clock import Clock, SystemClock
from flame.config import Settings
from flame.core.crypto import open_keystore
from flame.core.keys import Account, Keys
from flame.core.ratelimit import TokenBuckets
from flame.errors import FlameError, WrongPassword
from flame.net.peer_client import PeerClient
from flame.net.server import Listener
from flame.net.verify import RequestVerifier
from flame.services.context import Context
from flame.services.events import Events
from flame.services.registry import Services
from flame.store.db import Database, FolderLock, open_daemon_db
from flame.store.keystore import get_meta, load_account

log = logging.getLogger("flame.daemon")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
LOG_OFF_TIMEOUT_S = 2.0


def advertised_address(settings: Settings, port: int) -> str:
    if settings.daemon.public_address:
        return settings.daemon.public_address.rstrip("/")
    host = settings.daemon.peer_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def build_services(
    settings: Settings, db: Database, account: Account, clock: Clock, directory_url: str
) -> Services:
    """Everything one account's daemon runs on, over its open database (still locked)."""
    keys = Keys(account)
    ctx = Context(settings, db, clock, keys, Events())
    client = PeerClient(keys, settings.daemon.request_timeout_s, clock.now)
    return Services.build(ctx, client, directory_url)


def build_verifier(settings: Settings, username: str, clock: Clock) -> RequestVerifier:
    """The checks of signed peer requests, with the per-caller limits (PROTOCOL.md §12.5)."""
    limits = settings.limits
    return RequestVerifier(
        username,
        clock.now(),
        clock.now,
        per_caller=TokenBuckets(limits.peer_rate_per_sender, limits.peer_burst_per_sender),
    )


async def unlock_keys(keys: Keys, password: str) -> bool:
    """Check the password against the keystore (Argon2id, in a thread); True if this unlocked
    the keys for the first time. A wrong password raises WrongPassword and unlocks nothing."""
    account = keys.account
    identity = await asyncio.to_thread(open_keystore, account.sealed, account.username, password)
    if identity.identity_key != account.identity_key:
        raise WrongPassword("The keystore does not match this account.")
    return keys.unlock(identity)


class Daemon:
    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, web_dir: Path = WEB_DIR
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.web_dir = web_dir
        self.data_dir = settings.daemon_data_dir()
        self.lock = FolderLock(self.data_dir)
        self.db: Database | None = None
        self.services: Services | None = None
        self.verifier: RequestVerifier | None = None  # of signed peer requests
        self.listeners: list[Listener] = []
        self.supervisor: tasks.Supervisor | None = None
        self.unlock_lock = asyncio.Lock()

    @property
    def peer_port(self) -> int:
        return self.listeners[0].port

    @property
    def ui_port(self) -> int:
        return self.listeners[1].port

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    async def start(self, password: str | None = None) -> None:
        self.lock.acquire()
        try:
            await self._start(password)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, password: str | None) -> None:
        settings, clock = self.settings, self.clock
        self.db = db = await open_daemon_db(self.data_dir)
        account = await load_account(db)
        if account is None:
            raise FlameError(f"No Flame account in {self.data_dir}; run 'flame init' first.")
        # The address given at enrollment wins over the settings' default.
        directory_url = (await get_meta(db, "directory_url")) or settings.daemon.directory_url
        self.services = services = build_services(settings, db, account, clock, directory_url)
        self.verifier = verifier = build_verifier(settings, account.username, clock)
        origin = UiOrigin()
        self.listeners = [
            Listener(
                peer_api.build(services, verifier),
                settings.daemon.peer_host,
                settings.daemon.peer_port,
            ),
            Listener(
                ui_api.build(services, self.web_dir, self.login, origin),
                settings.daemon.ui_host,
                settings.daemon.ui_port,
            ),
        ]
        for listener in self.listeners:
            await listener.start()
        origin.port = self.ui_port
        services.presence.address = advertised_address(settings, self.peer_port)
        log.info("%s: peers on port %d, UI on %s", account.username, self.peer_port, self.ui_url)
        if password is not None:
            await self.login(password)

    async def login(self, password: str) -> None:
        """Check the password against the keystore; the first success unlocks the daemon."""
        services = self.services
        assert services is not None
        async with self.unlock_lock:
            if await unlock_keys(services.ctx.keys, password):
                self.supervisor = tasks.Supervisor(tasks.loops(services))
                self.supervisor.start()
                log.info("%s unlocked", services.ctx.me)

    async def stop(self) -> None:
        """Stop the loops, then log off and close the listeners at the same time (each bounded),
        then the client and the database: a SIGTERM is answered within a few seconds."""
        if self.supervisor is not None:
            await self.supervisor.stop()
            self.supervisor = None
        services = self.services
        if services is not None:
            services.ctx.events.close_all()  # live feeds end now, not hold the listeners open

        async def log_off() -> None:
            if services is not None and services.ctx.keys.is_unlocked:
                with contextlib.suppress(FlameError, TimeoutError):
                    async with asyncio.timeout(LOG_OFF_TIMEOUT_S):
                        await services.presence.log_off()

        await asyncio.gather(log_off(), *(listener.stop() for listener in self.listeners))
        self.listeners = []
        if services is not None:
            await services.client.close()
            self.services = None
        if self.db is not None:
            await self.db.close()
            self.db = None
        self.lock.release()


async def run_until_signalled() -> None:
    """Wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

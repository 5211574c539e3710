"""The composition root of `flame serve`: settings -> store -> keys -> client -> apps -> tasks.

It owns start-up and shutdown (reverse order). A locked daemon (no password yet) serves hello and
the UI login, answers envelopes with 503 `locked` (senders keep them queued), and reports no
presence, so peers see it offline. Logging in to the UI unlocks it and starts the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

from flame.clock import Clock, SystemClock
from flame.config import Settings
from flame.core.crypto import Identity, open_keystore
from flame.core.signing import DIRECTORY_AUDIENCE
from flame.errors import FlameError, WrongPassword
from flame.hub import Hub
from flame.net import peer_api
from flame.net.peer_client import PeerClient
from flame.net.ratelimit import LimitedVerifier
from flame.net.server import Listener
from flame.net.ui import api as ui_api
from flame.net.ui.guard import UiOrigin
from flame.parts import Parts
from flame.store.db import Database, FolderLock
from flame.store.keystore import get_meta, load_account
from flame.tasks import LOOPS, Supervisor

log = logging.getLogger("flame.daemon")
SCHEMA = "flame.store.schema"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

assert DIRECTORY_AUDIENCE  # the directory is addressed by this name in signed requests


async def open_daemon_db(data_dir: Path) -> Database:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return await Database.open(data_dir / "flame.db", SCHEMA)


def advertised_address(settings: Settings, port: int) -> str:
    if settings.daemon.public_address:
        return settings.daemon.public_address.rstrip("/")
    host = settings.daemon.peer_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


class Daemon:
    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, web_dir: Path = WEB_DIR
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.web_dir = web_dir
        self.data_dir = settings.daemon_data_dir()
        self.lock = FolderLock(self.data_dir)
        self.parts: Parts | None = None
        self.listeners: list[Listener] = []
        self.supervisor: Supervisor | None = None
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
        db = await open_daemon_db(self.data_dir)
        account = await load_account(db)
        if account is None:
            await db.close()
            raise FlameError(f"No Flame account in {self.data_dir}; run 'flame init' first.")
        directory_url = (await get_meta(db, "directory_url")) or self.settings.daemon.directory_url
        client = PeerClient(
            account.username, self.settings.daemon.request_timeout_s, self.clock.now
        )
        limits = self.settings.limits
        verifier = LimitedVerifier(
            account.username,
            self.clock.now(),
            self.clock.now,
            rate_per_s=limits.peer_rate_per_sender,
            burst=limits.peer_burst_per_sender,
        )
        self.parts = Parts(
            self.settings, db, account, client, Hub(), self.clock, verifier, directory_url
        )
        origin = UiOrigin()
        self.listeners = [
            Listener(
                peer_api.build(self.parts),
                self.settings.daemon.peer_host,
                self.settings.daemon.peer_port,
            ),
            Listener(
                ui_api.build(self.parts, self.web_dir, self.login, origin),
                self.settings.daemon.ui_host,
                self.settings.daemon.ui_port,
            ),
        ]
        for listener in self.listeners:
            await listener.start()
        origin.port = self.ui_port
        self.parts.public_address = advertised_address(self.settings, self.peer_port)
        log.info("%s: peers on port %d, UI on %s", account.username, self.peer_port, self.ui_url)
        if password is not None:
            await self.login(password)

    async def login(self, password: str) -> None:
        """Check the password against the keystore; the first success unlocks the daemon."""
        parts = self.parts
        assert parts is not None
        account = parts.account
        identity = await asyncio.to_thread(
            open_keystore, account.sealed, account.username, password
        )
        if identity.identity_key != account.identity_key:
            raise WrongPassword("The keystore does not match this account.")
        async with self.unlock_lock:
            if parts.identity is None:
                self._unlock(identity)

    def _unlock(self, identity: Identity) -> None:
        parts = self.parts
        assert parts is not None
        parts.identity = identity
        parts.client.identity = identity
        parts.unlocked.set()
        self.supervisor = Supervisor(parts, LOOPS)
        self.supervisor.start()
        log.info("%s unlocked", parts.me)

    async def stop(self) -> None:
        """Stop tasks, then log off and close the listeners at the same time (each bounded), then
        the client and the database: a SIGTERM is answered within a few seconds."""
        if self.supervisor is not None:
            await self.supervisor.stop()
            self.supervisor = None
        parts = self.parts
        if parts is not None:
            parts.hub.close_all()  # live feeds end now rather than hold the listeners open

        async def log_off() -> None:
            if parts is not None and parts.identity is not None:
                with contextlib.suppress(FlameError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await parts.client.log_off(parts.directory_url)

        await asyncio.gather(log_off(), *(listener.stop() for listener in self.listeners))
        self.listeners = []
        if parts is not None:
            await parts.client.close()
            await parts.db.close()
            self.parts = None
        self.lock.release()


async def run_until_signalled(start: asyncio.Future[None] | None = None) -> None:
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

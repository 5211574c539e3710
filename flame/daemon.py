"""The composition root of `flame serve`: settings -> keystore record -> apps -> (at the first
login) store -> keys -> client -> services -> loops. The only place that builds them; it owns
start-up, locking, unlocking and shutdown (reverse order).

A locked daemon holds no key and cannot read its own database (encrypted under a key sealed with
the private keys: docs/ARCHITECTURE.md, "At rest"). It serves hello and the UI's page and login,
answers every signed peer request with 503 `locked` (senders keep their envelopes queued), and
reports no presence, so peers see it offline. The first successful login opens the database,
builds the services and starts the loops; `security.lock_after_idle_s` without the UI being
used locks it again: loops stopped, logged off, feeds and sessions closed, database closed, keys
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from pathlib import Path

from aiohttp import web

from flame import tasks
from flame.api import peer as peer_api
from flame.api import ui as ui_api
from flame.api.ui.guard import UiOrigin
from flame.api.ui.state import UI, UiState
from flame.clock import Clock, SystemClock
from flame.config import Settings
from flame.core.crypto import Identity
from flame.core.keys import Account, Keys
from flame.core.ratelimit import TokenBuckets
from flame.core.transport import check_address
from flame.errors import FlameError
from flame.net.peer_client import PeerClient
from flame.net.server import ConnectionLimits, Listener, reachable_url
from flame.net.tls import Certificate, ensure_certificate
from flame.net.verify import RequestVerifier
from flame.services.account import (
    account_directory,
    find_account,
    malformed_directory_setting,
    open_account,
    unseal,
)
from flame.services.context import Context
from flame.services.events import Events
from flame.services.registry import ServiceHolder, Services
from flame.store.db import Database, FolderLock
from flame.store.folder import secure_folder
from flame.store.keystore import load_directory

log = logging.getLogger("flame.daemon")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
LOG_OFF_TIMEOUT_S = 2.0


def advertised_address(settings: Settings, port: int) -> str:
    if settings.daemon.public_address:
        return settings.daemon.public_address.rstrip("/")
    plain_http = settings.daemon.insecure_plain_http
    return reachable_url(settings.daemon.peer_host, port, plain_http=plain_http)


async def build_services(
    settings: Settings, db: Database, account: Account, identity: Identity, clock: Clock
) -> Services:
    """Everything one account's daemon runs on, over its open database, with its keys unlocked."""
    keys = Keys(account)
    keys.unlock(identity)
    ctx = Context(settings, db, clock, keys, Events())
    plain_http = settings.daemon.insecure_plain_http
    client = PeerClient(keys, settings.daemon.request_timeout_s, clock.now, plain_http=plain_http)
    # The directory as pinned at enrollment (address and certificate) wins over the settings.
    directory = account_directory(settings, await load_directory(db), account.username)
    if directory.tls is None and not plain_http:  # the client will not dial it: say why, once
        log.warning(
            "%s has no certificate pinned for the directory at %s (enrolled before TLS, or over "
            "plain HTTP), and plain HTTP is off (daemon.insecure_plain_http): Flame will not call "
            "it; enroll again over TLS (flame init, with a rekey invite)",
            account.username,
            directory.url,
        )
    alternates = tuple(u for u in settings.daemon.alternate_urls if u != directory.url)
    return Services.build(ctx, client, dataclasses.replace(directory, alternates=alternates))


async def unlock_services(holder: ServiceHolder, password: str) -> Services:
    """The password opens the account (its keys, then its database, converting an older data
    folder on the way); the services are built on it. WrongPassword unlocks nothing."""
    opened = await open_account(holder.settings, holder.account, password)
    holder.account = opened.account
    try:
        return await build_services(
            holder.settings, opened.db, opened.account, opened.identity, holder.clock
        )
    except BaseException:
        await opened.db.close()
        raise


def peer_connection_limits(settings: Settings) -> ConnectionLimits:
    """What the peer listener's connections may hold (docs/ARCHITECTURE.md, "Connections")."""
    limits = settings.limits
    return ConnectionLimits(
        per_address=limits.peer_connections_per_address,
        total=limits.peer_connections_max,
        idle_timeout_s=limits.peer_idle_timeout_s,
    )


def build_verifier(settings: Settings, username: str, clock: Clock) -> RequestVerifier:
    """The checks of signed peer requests, with the per-caller limits (PROTOCOL.md §12.5)."""
    limits = settings.limits
    return RequestVerifier(
        username,
        clock.now(),
        clock.now,
        per_caller=TokenBuckets(limits.peer_rate_per_sender, limits.peer_burst_per_sender),
    )


class Daemon:
    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, web_dir: Path = WEB_DIR
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.web_dir = web_dir
        self.data_dir = settings.daemon_data_dir()
        self.lock = FolderLock(self.data_dir)
        self.holder: ServiceHolder | None = None
        self.verifier: RequestVerifier | None = None  # of signed peer requests
        self.ui_app: web.Application | None = None
        self.listeners: list[Listener] = []
        self.supervisor: tasks.Supervisor | None = None
        self.idle_watch: asyncio.Task[None] | None = None
        self.unlock_lock = asyncio.Lock()
        self.tls_fingerprint: bytes | None = None  # of the peer listener's certificate
        self.address = ""  # where peers reach it, as its presence says

    @property
    def services(self) -> Services | None:
        """None while locked."""
        return None if self.holder is None else self.holder.current

    @property
    def ui_state(self) -> UiState:
        assert self.ui_app is not None
        return self.ui_app[UI]

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
        secure_folder(self.data_dir)  # 0700 and 0600, whatever an older version or a copy left
        account = find_account(self.data_dir)
        if account is None:
            raise FlameError(f"No Flame account in {self.data_dir}; run 'flame init' first.")
        self.holder = holder = ServiceHolder(settings, clock, account)
        self.verifier = verifier = build_verifier(settings, account.username, clock)
        # TLS on the peer listener (PROTOCOL.md §1.3), with the certificate made at `flame init`
        # (or now, for an older account); the UI stays plain HTTP on loopback.
        certificate: Certificate | None = None
        if not settings.daemon.insecure_plain_http:
            certificate = ensure_certificate(self.data_dir)
            self.tls_fingerprint = certificate.fingerprint
        origin = UiOrigin()
        self.ui_app = ui_api.build(holder, self.web_dir, self.login, origin)
        self.listeners = [
            Listener(
                peer_api.build(holder, verifier),
                settings.daemon.peer_host,
                settings.daemon.peer_port,
                peer_connection_limits(settings),
                None if certificate is None else certificate.server_context(),
                setting="--peer-port (daemon.peer_port)",
            ),
            Listener(
                self.ui_app,
                settings.daemon.ui_host,
                settings.daemon.ui_port,
                setting="--ui-port (daemon.ui_port)",
            ),
        ]
        for listener in self.listeners:
            await listener.start()
        origin.port = self.ui_port
        self.address = advertised_address(settings, self.peer_port)
        try:  # the directory would refuse it (PROTOCOL.md §1.3): say so now, not degrade silently
            check_address(self.address, plain_http=settings.daemon.insecure_plain_http)
        except ValueError as exc:
            raise FlameError(
                f"Peers cannot reach this daemon at {self.address!r}: {exc}. Set "
                "daemon.public_address (--public-address) to https://<host>:<port>."
            ) from None
        log.info("%s: peers on port %d, UI on %s", account.username, self.peer_port, self.ui_url)
        problem = malformed_directory_setting(settings)
        if problem is not None:  # serve uses the directory pinned at enrollment: carry on
            log.warning("%s; ignored: the directory pinned at flame init is used", problem)
        if password is not None:
            await self.login(password)

    async def login(self, password: str) -> None:
        """Check the password against the keystore; a success while locked unlocks the daemon."""
        holder = self.holder
        assert holder is not None
        async with self.unlock_lock:
            if holder.current is not None:
                await unseal(holder.account, password)  # unlocked already: only the check
                return
            services = await unlock_services(holder, password)
            services.presence.address = self.address
            services.presence.tls = self.tls_fingerprint
            # The choice first: a user who chose to appear offline is hidden from the first
            # request peers make and the first round of every loop (PROTOCOL.md §12.2).
            await services.status.load()
            holder.current = services
            self.ui_state.touch()  # logging in is using the UI
            self.supervisor = tasks.Supervisor(tasks.loops(services))
            self.supervisor.start()
            idle_s = self.settings.security.lock_after_idle_s
            if idle_s > 0:
                self.idle_watch = asyncio.create_task(self._lock_when_idle(idle_s), name="idle")
            log.info("%s unlocked", services.ctx.me)

    async def _lock_when_idle(self, idle_s: float) -> None:
        """Lock once the UI has not been used for `idle_s` (security.lock_after_idle_s)."""
        while True:
            since = self.clock.now() - self.ui_state.last_activity
            if since >= idle_s:
                log.info("locking: the UI has not been used for %.0f s", since)
                await self.relock()
                return
            await self.clock.sleep(idle_s - since)

    async def relock(self) -> None:
        """Back to locked, as after a restart: see the module's docstring."""
        async with self.unlock_lock:
            await self._lock()

    async def _lock(self) -> None:
        holder, services = self.holder, self.services
        if holder is None or services is None:
            return
        holder.current = None  # from now on: 503 `locked` to peers, nothing for the UI
        self.ui_state.sessions.revoke_all()
        watch, self.idle_watch = self.idle_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if self.supervisor is not None:
            await self.supervisor.stop()
            self.supervisor = None
        with contextlib.suppress(FlameError, TimeoutError):
            async with asyncio.timeout(LOG_OFF_TIMEOUT_S):
                await services.presence.log_off()
        services.ctx.keys.lock()
        await services.client.close()
        await services.ctx.db.close()  # waits for the statement under way; later ones: locked
        services.ctx.events.close_all()  # last: a page that sees its feed end sees all done
        log.info("%s locked", services.ctx.me)

    async def stop(self) -> None:
        """Lock (loops stopped, logged off: bounded), closing the listeners at the same time,
        so a SIGTERM is answered within a few seconds."""
        await asyncio.gather(self.relock(), *(listener.stop() for listener in self.listeners))
        self.listeners = []
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

"""Start and stop an aiohttp app on a TCP address (port 0 picks a free port), and bound what its
connections may hold: how many one remote address and all of them together keep open, and how
long one may sit without sending a whole request head (docs/ARCHITECTURE.md, "Connections").

The caps are a small protocol wrapper around aiohttp's own (`Admission`): a connection over a cap
is closed the moment it is accepted, before aiohttp sees it, so slow or idle connections from one
address cannot use up the file descriptors the rest of the daemon (its UI listener, its database)
needs. Idle connections are closed by aiohttp's keep-alive timer, which also runs from the moment
a connection opens until its first request head is complete.

Given a TLS context (PROTOCOL.md §1.3), the listener serves TLS 1.3. With caps, a connection is
admitted on TCP, before its handshake, which must then finish within the idle timeout: connections
that never complete one count and end as idle ones do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from flame.errors import FlameError
from flame.net.failures import failure_reason

log = logging.getLogger("flame.server")
# A share of the open-file limit: the rest stays for the database, files being received, the
# outbound connections and the UI listener.
FD_SHARE = 4
FD_RESERVE_MIN = 16
STOP_DRAIN_S = 1.0  # at stop, for connections aborted to be gone (one or two loop turns)


class ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's log of its connections. A request it cannot even parse (a bad request line or
    header, junk on the port) is the sender's fault, not a bug: one INFO line without a
    traceback, so that junk cannot fill the log with errors. Anything else stays an error."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.info(f"{msg}: %s", *args, exc_info.message, **kw)
        else:
            self.error(msg, *args, exc_info=exc_info, **kw)


PROTOCOL_LOG = ProtocolLog(logging.getLogger("flame.server.protocol"))


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    per_address: int  # open connections from one remote address
    total: int  # open connections in all (see `cap_total`)
    idle_timeout_s: float  # to send a whole request head, from opening or from the last answer


def open_files_limit() -> int | None:
    """The process's soft RLIMIT_NOFILE, or None where there is none to read."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def cap_total(configured: int, open_files: int | None) -> int:
    """The connections a listener may hold in all: the setting, but never more than a quarter of
    the open-file limit (at least FD_RESERVE_MIN), whatever the setting says."""
    if open_files is None:
        return configured
    return max(1, min(configured, max(FD_RESERVE_MIN, open_files // FD_SHARE)))


@dataclass
class Admission:
    """Counts open connections per remote address and in all; refuses those over a cap."""

    per_address: int
    total: int
    open: Counter[str] = field(default_factory=Counter)
    refused: int = 0  # connections closed at once so far (for the tests and the log)
    is_closed: bool = False  # the listener stopped: a connection accepted just before is not

    def admit(self, address: str) -> bool:
        if self.is_closed:
            return False
        if self.open[address] >= self.per_address or self.open.total() >= self.total:
            self.refused += 1
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class GatedConnection(asyncio.Protocol):
    """One accepted connection: admitted, it is aiohttp's (every callback forwarded to the
    request handler made for it); refused, it is aborted before aiohttp sees a byte.

    With `tls`, the admission is made on the TCP connection, before the TLS handshake, so that
    connections that never finish one count against the caps as idle ones do; the handshake
    then runs (bounded by `handshake_timeout_s`) and the handler gets the TLS transport."""

    def __init__(
        self,
        server: web.Server,
        admission: Admission,
        tls: ssl.SSLContext | None = None,
        handshake_timeout_s: float | None = None,
    ) -> None:
        self.server = server
        self.admission = admission
        self.tls = tls
        self.handshake_timeout_s = handshake_timeout_s
        self.handler: asyncio.Protocol | None = None
        self.address = ""
        self.is_admitted = False
        self.early: list[bytes] = []  # decrypted before the handler exists (TLS only)
        self.upgrade: asyncio.Task[None] | None = None
        self.tcp: asyncio.Transport | None = None  # the TCP transport, for as long as it lives
        self.gone = asyncio.Event()  # its connection was lost (or refused): the socket is closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        assert isinstance(transport, asyncio.Transport)
        if not self.admission.admit(address):
            log.debug("connection from %s refused: over the connection caps", address)
            transport.abort()
            return
        self.address, self.is_admitted = address, True
        self.tcp = transport
        if self.tls is None:
            self.handler = self.server()
            self.handler.connection_made(transport)
        else:
            self.upgrade = asyncio.ensure_future(self._start_tls(transport))

    def abort(self) -> None:
        """At shutdown, once the handlers closed: a connection still in its TLS handshake is no
        handler's to close, and a TLS connection whose peer never answered the close (its
        close_notify) would keep its socket for the TLS shutdown timeout (30 s)."""
        if self.upgrade is not None and not self.upgrade.done():
            self.upgrade.cancel()
        if self.tcp is not None and not self.tcp.is_closing():
            self.tcp.abort()

    async def _start_tls(self, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        assert self.tls is not None
        try:
            secured = await loop.start_tls(
                raw,
                self,
                self.tls,
                server_side=True,
                ssl_handshake_timeout=self.handshake_timeout_s,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.address, exc)
            raw.abort()
            self._release()
            return
        if secured is None:  # the connection ended meanwhile
            self._release()
            return
        self.handler = handler = self.server()
        handler.connection_made(secured)
        for data in self.early:
            handler.data_received(data)
        self.early.clear()

    def _release(self) -> None:
        if self.is_admitted:
            self.is_admitted = False
            self.admission.release(self.address)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()
        self._release()
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.handler is not None:
            self.handler.data_received(data)
        elif self.is_admitted:
            self.early.append(data)

    def eof_received(self) -> bool | None:
        return None if self.handler is None else self.handler.eof_received()

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()


def reachable_url(host: str, port: int, *, plain_http: bool) -> str:
    """Where other machines reach a listener on `host`: that host, or this machine's name when it
    listens on every address."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn().lower()
    host = f"[{host}]" if ":" in host else host
    return f"{'http' if plain_http else 'https'}://{host}:{port}"


@dataclass
class Listener:
    app: web.Application
    host: str
    port: int
    limits: ConnectionLimits | None = None  # None: aiohttp's defaults, no caps (the UI)
    ssl_context: ssl.SSLContext | None = None  # TLS (the peer and directory listeners)
    setting: str = "its port setting"  # what sets the port ("--ui-port"), named when it is taken
    runner: web.AppRunner | None = None
    server: asyncio.Server | None = None
    admission: Admission | None = None
    bound: list[tuple[str, int]] = field(default_factory=list)
    gated: weakref.WeakSet[GatedConnection] = field(default_factory=weakref.WeakSet)

    async def start(self) -> None:
        options: dict[str, Any] = {"logger": PROTOCOL_LOG}
        if self.limits is not None:
            options["keepalive_timeout"] = self.limits.idle_timeout_s
        self.runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0, **options
        )
        await self.runner.setup()
        handlers = self.runner.server
        assert handlers is not None
        factory: Any = handlers
        tls: dict[str, Any] = {} if self.ssl_context is None else {"ssl": self.ssl_context}
        if self.limits is not None:  # the gate admits, then starts TLS itself
            total = cap_total(self.limits.total, open_files_limit())
            admission = self.admission = Admission(self.limits.per_address, total)
            context, timeout_s = self.ssl_context, self.limits.idle_timeout_s

            def admitted_first() -> GatedConnection:
                connection = GatedConnection(handlers, admission, context, timeout_s)
                self.gated.add(connection)
                return connection

            factory = admitted_first
            tls = {}
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(
                factory, self.host, self.port, reuse_address=True, **tls
            )
        except OSError as exc:
            raise self.bind_error(exc) from None
        self.bound = [
            sock.getsockname()[:2]
            for sock in self.server.sockets
            if sock.family in (socket.AF_INET, socket.AF_INET6)
        ]
        self.port = self.bound[0][1]

    def bind_error(self, exc: OSError) -> FlameError:
        """One line for a port that cannot be had, saying which setting to change."""
        where = f"{self.host}:{self.port}"
        if exc.errno == errno.EADDRINUSE:
            return FlameError(
                f"Cannot listen on {where}: the port is already in use (another Flame, or "
                f"another program); choose another with {self.setting}."
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            return FlameError(f"Cannot listen on {where}: {self.host} is not this machine's.")
        if exc.errno == errno.EACCES:
            return FlameError(
                f"Cannot listen on {where}: permission denied (ports below 1024 need privileges); "
                f"choose another with {self.setting}."
            )
        return FlameError(f"Cannot listen on {where}: {failure_reason(exc)}.")

    async def stop(self) -> None:
        if self.admission is not None:  # accepted, but not yet made: closed when it is
            self.admission.is_closed = True
        if self.server is not None:
            # No new connections. A connection accepted in the last turn is made by a task that
            # Python 3.11 runs later: if the server were closed by then, it would drop the task's
            # socket without closing it. So: stop accepting, let those tasks run (the admission
            # refuses them), then close; the runner closes the open ones.
            loop = asyncio.get_running_loop()
            for sock in self.server.sockets:
                loop.remove_reader(sock.fileno())
            await asyncio.sleep(0)
            self.server.close()
            self.server = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self._drain()

    async def _drain(self) -> None:
        """Abort what the handlers left open, and wait for it to be gone: a connection accepted
        just before the stop is made (and refused) a loop turn later, and an aborted one closes
        its socket a turn after that; an event loop that ended first would leave the sockets."""
        left = [connection for connection in self.gated if not connection.gone.is_set()]
        for connection in left:
            connection.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_DRAIN_S):
                for connection in left:
                    await connection.gone.wait()

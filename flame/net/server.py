"""Start and stop an aiohttp app on a TCP address, over TLS when given a context (PROTOCOL.md
§1.3); port 0 picks a free port."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Listener:
    app: web.Application
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    runner: web.AppRunner | None = None
    bound: list[tuple[str, int]] = field(default_factory=list)

    async def start(self) -> None:
        self.runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self.runner.setup()
        site = web.TCPSite(
            self.runner, self.host, self.port, ssl_context=self.ssl_context, reuse_address=True
        )
        await site.start()
        server = site._server  # aiohttp exposes no public accessor for the bound sockets
        assert server is not None
        self.bound = [
            sock.getsockname()[:2]
            for sock in server.sockets  # type: ignore[attr-defined]
            if sock.family in (socket.AF_INET, socket.AF_INET6)
        ]
        self.port = self.bound[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

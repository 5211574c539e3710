"""The chaos harness's fault-injecting TCP proxy: each daemon's peer port sits behind one (in the
harness's own process, 127.0.0.1 only), and the daemon advertises the proxy as its public address,
so peers reach each other only through the proxies, and a blocked proxy cuts a peer off."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class FaultProxy:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target_port. Blocked, it closes every accepted
    connection at once and cuts those already open (a peer that is unreachable). With port 0 the
    system picks its port at start; until `target_port` is known, it closes what it accepts."""

    def __init__(self, name: str, target_port: int | None = None, port: int = 0) -> None:
        self.name = name
        self.port = port
        self.target_port = target_port
        self.blocked = False
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.WriteTransport] = set()
        self.handlers: set[asyncio.Task[Any]] = set()
        self.connections = 0
        self.refused = 0
        self.cut = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    def block(self) -> None:
        self.blocked = True
        self.cut += len(self.transports)
        for transport in list(self.transports):
            transport.abort()

    def unblock(self) -> None:
        self.blocked = False

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.blocked = True
        for transport in list(self.transports):
            transport.abort()
        if self.handlers:  # cut off, they end by themselves; cancelled only if they do not
            _, late = await asyncio.wait(set(self.handlers), timeout=2.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 5.0)
            self.server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            await self._relay(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # cancelled only by stop(): asyncio would log a cancelled handler as an error
        finally:
            if task is not None:
                self.handlers.discard(task)
            writer.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            self.refused += 1
            return
        if self.target_port is None:
            return  # the daemon behind has not started yet
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port), 5.0
            )
        except (OSError, TimeoutError):
            return  # the daemon is down: the caller sees the connection closed
        if self.blocked:
            up_writer.transport.abort()
            self.refused += 1
            return
        self.connections += 1
        pair = (writer.transport, up_writer.transport)
        self.transports.update(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.transports.difference_update(pair)
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
    except (OSError, RuntimeError):
        writer.transport.abort()

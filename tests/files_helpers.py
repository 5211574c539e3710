"""Helpers for the file tests: the browser's upload, waiting on transfer events, reading what a
daemon stored, and a fault-injecting TCP proxy between two daemons (loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flame.config import Settings
from flame.daemon import Daemon
from flame.store import files as file_store
from flame.store.files import Transfer
from tests.cluster import Cluster, Feed, UiClient, services_of

MIB = 1024 * 1024


def png_bytes(extra: int = 0) -> bytes:
    """A real 1x1 PNG (red), padded with a trailing chunk-sized comment when asked."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    text = chunk(b"tEXt", b"Comment\x00" + b"x" * extra) if extra else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + text
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible, reproducible test content (SHAKE-256 of a seed)."""
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size)


async def announce(
    ui: UiClient, peer: str, name: str, size: int, media_type: str = ""
) -> tuple[int, dict[str, Any]]:
    return await ui.post(
        f"/ui/api/conversations/{peer}/files", {"name": name, "size": size, "type": media_type}
    )


async def put_content(
    ui: UiClient, peer: str, transfer_id: str, data: bytes
) -> tuple[int, dict[str, Any]]:
    async with ui.session.put(
        f"/ui/api/conversations/{peer}/files/{transfer_id}/content",
        data=io.BytesIO(data),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
    ) as response:
        return response.status, await response.json()


async def send_file(
    ui: UiClient, peer: str, name: str, data: bytes, media_type: str = ""
) -> dict[str, Any]:
    """What the browser does: announce, then stream the bytes. Returns the offer message."""
    return await ui.send_file(peer, name, data, media_type)


async def slow_alice(cluster: Cluster, rate: int = 4 * MIB) -> Settings:
    """alice sends in 64 KiB chunks at `rate` bytes/s, so a test can act mid-transfer."""
    settings = await cluster.enroll("alice")
    settings.files.chunk_bytes = 64 * 1024
    settings.files.send_rate_bytes_s = rate
    return settings


def progress(transfer_id: str, phase: str, at_least: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["type"] == "file_progress"
        and e["transfer_id"] == transfer_id
        and e["phase"] == phase
        and e["bytes"] >= at_least
    )


def file_state(transfer_id: str, *states: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["type"] == "file_state"
        and e["file"]["transfer_id"] == transfer_id
        and e["file"]["state"] in states
    )


async def wait_state(
    feed: Feed, transfer_id: str, *states: str, timeout: float = 20.0
) -> dict[str, Any]:
    event = await feed.wait_for(file_state(transfer_id, *states), timeout)
    view: dict[str, Any] = event["file"]
    return view


async def fetch(ui: UiClient, peer: str, transfer_id: str, query: str = "") -> tuple[int, Any]:
    """GET a file's bytes as the browser would; returns the status and (body, headers)."""
    async with ui.session.get(
        f"/ui/api/conversations/{peer}/files/{transfer_id}/content{query}"
    ) as response:
        return response.status, (await response.read(), dict(response.headers))


async def transfer_of(node: Daemon, peer: str, direction: str, transfer_id: str) -> Transfer:
    transfer = await file_store.get(services_of(node).ctx.db, peer, direction, transfer_id)
    assert transfer is not None
    return transfer


def files_on_disk(node: Daemon) -> list[Path]:
    folder = services_of(node).ctx.settings.daemon_data_dir() / "files"
    return sorted(folder.iterdir()) if folder.exists() else []


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CHUNK_PUT = b"PUT /api/v1/files/"


@dataclass
class Proxy:
    """A TCP proxy in front of a daemon's peer port (or a directory). It can damage one byte of
    the traffic towards the target once (`corrupt_after`), hold its answers back, cut every
    connection, or refuse new ones. It forwards bytes, so TLS passes through it (`scheme` is what
    the target behind it serves)."""

    target_port: int = 0
    # Flip the byte at this offset of the next chunk PUT (plain HTTP), or of the first connection
    # to carry that many bytes (TLS: the PUT cannot be told apart in the ciphertext).
    corrupt_after: int | None = None
    scheme: str = "https"
    refusing: bool = False
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    corrupted: asyncio.Event = field(default_factory=asyncio.Event)
    # While `holding` (hold()), bytes from the target wait (an answer on its way, slow);
    # `held` is set once some do. release() lets them through.
    holding: bool = False
    held: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing or not self.target_port:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers.update({writer, up_writer})
        upstream = asyncio.create_task(self._pump(reader, up_writer, damage=True))
        downstream = asyncio.create_task(self._pump(up_reader, writer, damage=False))
        self.tasks.update({upstream, downstream})
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        self.tasks.difference_update({upstream, downstream})

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, damage: bool
    ) -> None:
        seen = 0
        # Where the first chunk PUT on this connection starts (TLS: the connection itself).
        put_at: int | None = 0 if self.scheme == "https" else None
        try:
            while data := await reader.read(65536):
                if damage and self.corrupt_after is not None:
                    if put_at is None and (found := data.find(CHUNK_PUT)) >= 0:
                        put_at = seen + found
                    position = -1 if put_at is None else put_at + self.corrupt_after - seen
                    if 0 <= position < len(data):
                        flipped = bytes([data[position] ^ 0x01])
                        data = data[:position] + flipped + data[position + 1 :]
                        self.corrupt_after = None
                        self.corrupted.set()
                if not damage and self.holding:
                    self.held.set()
                    await self.released.wait()
                seen += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def hold(self) -> None:
        """From now on, answers wait (until release())."""
        self.held.clear()
        self.released.clear()
        self.holding = True

    def release(self) -> None:
        self.holding = False
        self.released.set()

    def cut(self) -> None:
        """Drop every open connection at once, as a broken network would."""
        for writer in list(self.writers):
            transport = writer.transport
            transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.release()
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def bob_behind(
    cluster: Cluster, proxy: Proxy, alice: Settings | None = None, **daemon: Any
) -> tuple[UiClient, Feed, UiClient, Feed]:
    """alice (her settings if given), and bob whom she reaches only through `proxy`: their UIs
    and feeds, once bob is online for her."""
    await cluster.start_daemon("alice", settings=alice or await cluster.enroll("alice", **daemon))
    bob = await cluster.start_daemon(
        "bob", settings=await cluster.enroll("bob", public_address=proxy.url, **daemon)
    )
    proxy.target_port = bob.peer_port
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    await alice_ui.wait_status(alice_feed, "bob", "online")
    return alice_ui, alice_feed, bob_ui, bob_feed

"""What crosses the network: a recording proxy sits between the daemons and in front of the
directory; the plaintext of the conversation appears in none of those bytes."""

from __future__ import annotations

import asyncio
import contextlib

from tests.cluster import Cluster

SECRET_OUT = "The board meets Thursday at 0700 about Project Kestrel"
SECRET_BACK = "Understood: Kestrel numbers ready by Wednesday night"


class RecordingProxy:
    """A loopback TCP relay that keeps every byte it forwards, both ways. Its target may be set
    after it started (a daemon's port is known once the daemon is up); until then it refuses."""

    def __init__(self, target_port: int = 0) -> None:
        self.target_port = target_port
        self.captured = bytearray()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self.target_port:
                raise ConnectionRefusedError
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    self.captured += data
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(ConnectionError, OSError):
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            await self.server.wait_closed()


async def test_no_plaintext_crosses_the_wire(cluster: Cluster) -> None:
    directory = await cluster.start_directory()
    assert directory.listener is not None
    to_directory = RecordingProxy(directory.listener.port)
    await to_directory.start()
    proxied_directory = f"http://127.0.0.1:{to_directory.port}"

    proxies = {}
    for name in ("alice", "bob"):
        proxy = RecordingProxy()
        await proxy.start()
        proxies[name] = proxy
        settings = await cluster.enroll(
            name, public_address=f"http://127.0.0.1:{proxy.port}", directory_url=proxied_directory
        )
        proxy.target_port = (await cluster.start_daemon(name, settings=settings)).peer_port
    try:
        alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
        alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
        await alice.wait_status(alice_feed, "bob", "online")
        await bob.wait_status(bob_feed, "alice", "online")
        await alice.send("bob", SECRET_OUT)
        got = await bob_feed.wait_for(lambda e: e["type"] == "message")
        assert got["message"]["text"] == SECRET_OUT
        await bob.send("alice", SECRET_BACK)
        got = await alice_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["direction"] == "in"
        )
        assert got["message"]["text"] == SECRET_BACK

        peer_bytes = bytes(proxies["alice"].captured + proxies["bob"].captured)
        assert b"POST /api/v1/envelopes" in peer_bytes  # the messages did cross these proxies
        assert b"POST /dir/v1/enroll" in bytes(to_directory.captured)
        for captured in (peer_bytes, bytes(to_directory.captured)):
            for secret in (SECRET_OUT, SECRET_BACK):
                for word in (secret, "Kestrel", secret.split()[1]):
                    assert word.encode() not in captured
                    assert word.encode("utf-16-le") not in captured
    finally:
        await cluster.close()
        for proxy in (*proxies.values(), to_directory):
            await proxy.stop()

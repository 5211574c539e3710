"""What crosses the network (PROTOCOL.md §1.3, §15): a recording proxy sits between the daemons
and in front of the directory and keeps every byte. Over TLS none of those bytes names a user, a
header, a route, a JSON field or a word of the conversation, and not even the certificates show;
an active attacker who answers in a daemon's place with a certificate of its own is refused
before a single request byte reaches it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from flame.net.tls import CERT_NAME, ensure_certificate
from tests.cluster import Cluster, eventually, services_of

SECRET_OUT = "The board meets Thursday at 0700 about Project Kestrel"
SECRET_BACK = "Understood: Kestrel numbers ready by Wednesday night"
# Every name below would tell an observer who talks to whom, or what about.
NAMES = ("alice", "bobby")
METADATA = (
    "Flame-User",
    "Flame-To",
    "Flame-Signature",
    "Flame-Nonce",
    "/api/v1/",
    "/dir/v1/",
    "HTTP/1.1 200",  # (the ClientHello does name "http/1.1": the ALPN protocol, as in any TLS)
    "POST ",
    "Host:",
    "envelopes",
    '"eph"',
    "identity_key",
    "presence",
    "application/json",
)


class RecordingProxy:
    """A loopback TCP relay that keeps every byte it forwards, both ways. With `tls` it is an
    attacker on the path instead: it answers TLS itself, with a certificate of its own, and keeps
    whatever it could decrypt."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.target_port = 0
        self.tls = tls
        self.captured = bytearray()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def named_url(self) -> str:
        """The same, by a host name: a name the ClientHello (in the clear) must not carry."""
        return f"https://localhost:{self.port}"

    async def start(self) -> RecordingProxy:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        if self.tls is not None:  # the attacker: read what the client is willing to send
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while data := await reader.read(65536):
                    self.captured += data
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers.append(up_writer)

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


def certificate_der(folder: Path) -> bytes:
    cert = x509.load_pem_x509_certificate((folder / CERT_NAME).read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


async def test_the_network_sees_no_names_headers_content_or_certificates(cluster: Cluster) -> None:
    directory = await cluster.start_directory()
    assert directory.listener is not None
    to_directory = await RecordingProxy().start()
    to_directory.target_port = directory.listener.port
    proxies: dict[str, RecordingProxy] = {}
    try:
        for name in NAMES:
            proxy = proxies[name] = await RecordingProxy().start()
            settings = await cluster.enroll(
                name, public_address=proxy.named_url, directory_url=to_directory.named_url
            )
            proxy.target_port = (await cluster.start_daemon(name, settings=settings)).peer_port
        alice, bobby = await cluster.ui("alice"), await cluster.ui("bobby")
        alice_feed, bobby_feed = await alice.websocket(), await bobby.websocket()
        await alice.wait_status(alice_feed, "bobby", "online")
        await bobby.wait_status(bobby_feed, "alice", "online")
        await alice.send("bobby", SECRET_OUT)
        got = await bobby_feed.wait_for(lambda e: e["type"] == "message")
        assert got["message"]["text"] == SECRET_OUT
        await bobby.send("alice", SECRET_BACK)
        got = await alice_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["direction"] == "in"
        )
        assert got["message"]["text"] == SECRET_BACK

        peer_bytes = bytes(proxies["alice"].captured + proxies["bobby"].captured)
        directory_bytes = bytes(to_directory.captured)
        assert len(peer_bytes) > 2000 and len(directory_bytes) > 2000  # the traffic did pass
        assert peer_bytes[:1] == b"\x16"  # a TLS handshake record, not "POST ..."
        certificates = [certificate_der(cluster.root / "directory")]
        certificates += [certificate_der(cluster.root / name) for name in NAMES]
        for captured in (peer_bytes, directory_bytes):
            words = [*NAMES, *METADATA, SECRET_OUT, SECRET_BACK, "Kestrel", "Thursday"]
            words.append("localhost")  # the host called: not in the ClientHello's SNI
            for word in words:
                assert word.encode() not in captured, word
                assert word.encode().lower() not in captured.lower(), word
                assert word.encode("utf-16-le") not in captured, word
            for der in certificates:  # TLS 1.3 sends them encrypted
                assert der[-64:] not in captured
    finally:
        await cluster.close()
        for proxy in (*proxies.values(), to_directory):
            await proxy.stop()


async def test_an_attacker_in_bobs_place_is_refused_before_learning_anything(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The attacker answers at bob's address with a certificate of its own (it cannot present
    bob's: it lacks his key). alice's daemon refuses it with the reason, sends it nothing, and the
    message waits for the real bob."""
    mallory_tls = ensure_certificate(tmp_path / "mallory").server_context()
    attacker = await RecordingProxy(tls=mallory_tls).start()
    try:
        await cluster.start_directory()
        await cluster.add_user("alice")
        await cluster.start_daemon(
            "bob", settings=await cluster.enroll("bob", public_address=attacker.url)
        )
        alice = await cluster.ui("alice")
        feed = await alice.websocket()
        await alice.wait_status(feed, "bob", "online")  # the directory says where bob is
        sent = await alice.send("bob", SECRET_OUT)

        services = services_of(cluster.daemons["alice"])
        contact = await services.contacts.get("bob")
        assert contact is not None and contact.address == attacker.url

        async def refused() -> bool:
            row = await services.ctx.db.fetchone(
                "SELECT last_error FROM outbox WHERE message_id=?", (sent["id"],)
            )
            return row is not None and "certificate" in (row[0] or "")

        await eventually(refused, equals=True)
        row = await services.ctx.db.fetchone(
            "SELECT last_error FROM outbox WHERE message_id=?", (sent["id"],)
        )
        assert row is not None and row[0] == (
            f"bob's daemon at {attacker.url} presented a TLS certificate other than the one in "
            "bob's signed presence: refused (someone in the middle, or an old address)."
        )
        assert attacker.connections >= 1
        assert bytes(attacker.captured) == b""  # not one byte of a request reached it
        states = {m["id"]: m["state"] for m in await alice.messages("bob")}
        assert states[sent["id"]] == "sending"  # still queued, for the real bob
    finally:
        await attacker.stop()

"""Slowloris (issue 9): idle and half-open connections cannot take the peer listener, nor the UI,
away from everyone else. Real sockets on loopback against a real daemon's listeners: a cap per
remote address and in all (closed the moment they are accepted), idle connections closed after
`limits.peer_idle_timeout_s`, a body that does not arrive in time answered 408
(docs/ARCHITECTURE.md, "Connections"). The listener speaks TLS (PROTOCOL.md §1.3): a connection is
counted from TCP on, so one that never even starts its handshake counts and times out too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from typing import Any

from flame.daemon import Daemon
from flame.net.server import Admission, cap_total
from tests.cluster import Cluster, eventually

ATTACKER = "127.0.0.2"  # loopback too: another machine, as far as the daemon can tell
HALF_A_HEAD = b"POST /api/v1/envelopes HTTP/1.1\r\nHost: alice\r\nContent-Length: 10"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def admission_of(node: Daemon) -> Admission:
    admission = node.listeners[0].admission
    assert admission is not None
    return admission


def any_certificate() -> ssl.SSLContext:
    """An attacker's TLS client: it trusts whatever it is shown."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


async def connect(node: Daemon, source: str = ATTACKER, send: bytes = b"") -> Connection:
    """A connection to the peer port; one that sends bytes first completes the TLS handshake
    (PROTOCOL.md §1.3), one that does not is only TCP: it never even starts a handshake."""
    tls: dict[str, Any] = {"ssl": any_certificate(), "server_hostname": "flame"} if send else {}
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", node.peer_port, local_addr=(source, 0), **tls
    )
    if send:
        writer.write(send)
        await writer.drain()
    return reader, writer


async def closed_by_the_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before it closed the connection (a reset counts as closed)."""
    received = b""
    with contextlib.suppress(ConnectionResetError, ssl.SSLError):
        async with asyncio.timeout(30):  # a bound on the test, not a measure of speed
            while chunk := await reader.read(65536):
                received += chunk
    return received


def close_all(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()


async def test_a_flood_of_idle_connections_from_one_address_leaves_peers_and_the_ui_served(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user(
        "alice",
        limits__peer_connections_per_address=50,
        limits__peer_connections_max=200,
        limits__peer_idle_timeout_s=60.0,  # none of them times out during this test
    )
    await cluster.add_user("bob")
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    feed = await alice_ui.websocket()

    held = [await connect(alice, send=HALF_A_HEAD if n % 2 else b"") for n in range(50)]
    refused = [await connect(alice) for _ in range(10)]
    for reader, _ in refused:
        assert await closed_by_the_server(reader) == b""  # closed at once, not a byte sent
    admission = admission_of(alice)
    assert admission.open[ATTACKER] == 50 and admission.refused == 10

    # An honest peer (bob, from 127.0.0.1) still gets through, and so does alice's own UI.
    await bob_ui.send("alice", "through the crowd")
    event = await feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "through the crowd"
    status, me = await alice_ui.get("/ui/api/me")
    assert status == 200 and me["username"] == "alice"

    close_all(held + refused)

    async def attacker_connections() -> int:
        return admission.open[ATTACKER]

    await eventually(attacker_connections, equals=0)


async def test_idle_and_half_sent_requests_are_closed_by_the_server(cluster: Cluster) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice", limits__peer_idle_timeout_s=0.5)
    hello = b"GET /api/v1/hello HTTP/1.1\r\nHost: alice\r\n\r\n"
    silent = [await connect(alice) for _ in range(3)]
    half = [await connect(alice, send=HALF_A_HEAD) for _ in range(3)]
    answered = await connect(alice, send=hello)  # a whole request, then nothing more
    for reader, _ in silent + half:
        assert await closed_by_the_server(reader) == b""
    reply = await closed_by_the_server(answered[0])
    # The public answer (PROTOCOL.md §7.1): an unsigned hello names no one.
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"locked": false}')
    close_all([*silent, *half, answered])


async def test_a_body_that_does_not_arrive_in_time_is_a_408(cluster: Cluster) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice", limits__peer_body_timeout_s=0.5)
    head = b"POST /api/v1/envelopes HTTP/1.1\r\nHost: alice\r\nContent-Length: 100\r\n\r\n"
    connection = await connect(alice, send=head + b'{"envelopes": [')
    reply = await connection[0].readuntil(b"}")  # the answer; the server lingers, then closes
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), reply
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "request_timeout" and "0.5 s" in body["message"]
    close_all([connection])


async def test_connections_from_many_addresses_stop_at_the_total_cap(cluster: Cluster) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user(
        "alice", limits__peer_connections_max=20, limits__peer_idle_timeout_s=60.0
    )
    alice_ui = await cluster.ui("alice")
    connections = [await connect(alice, source=f"127.0.0.{n}") for n in range(2, 22)]
    over = [await connect(alice, source=f"127.0.0.{n}") for n in range(22, 27)]
    for reader, _ in over:
        assert await closed_by_the_server(reader) == b""
    assert admission_of(alice).open.total() == 20
    status, _ = await alice_ui.get("/ui/api/me")  # the UI listener is not the peer listener's
    assert status == 200
    close_all(connections + over)


def test_the_total_cap_stays_well_below_the_open_file_limit() -> None:
    assert cap_total(512, 1024) == 256  # the usual desktop limit: a quarter of it
    assert cap_total(512, 1_048_576) == 512  # a generous limit: the setting
    assert cap_total(512, 40) == 16  # a tiny limit still lets a few peers in
    assert cap_total(512, None) == 512


async def test_bytes_that_are_not_utf8_or_not_http_are_refused_without_an_error(
    cluster: Cluster,
) -> None:
    """A Host that is not UTF-8 reaches the signature check as the bytes sent (a 401, not a
    500); junk that is not HTTP at all is aiohttp's plain 400, logged as the sender's fault."""
    await cluster.start_directory()
    alice = await cluster.add_user("alice")
    await cluster.add_user("bob")  # a user alice knows: her check gets to the signature
    signed = b"Flame-User: bob\r\nFlame-To: alice\r\nFlame-Timestamp: %d\r\n" % int(time.time())
    signed += b"Flame-Nonce: AAAAAAAAAAAAAAAAAAAAAA\r\nFlame-Signature: " + b"A" * 86 + b"\r\n"
    for host in (b"127.0.0.1\xff", b"x\xed\xa0\x80"):
        head = b"POST /api/v1/envelopes HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 2\r\n"
        reader, writer = await connect(alice, source="127.0.0.1", send=head + signed + b"\r\n{}")
        reply = await reader.readuntil(b"}")
        assert reply.startswith(b"HTTP/1.1 401") and b'"bad_signature"' in reply, reply
        writer.close()
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n", b"GET /api/v1/\xff HTTP/1.1\r\n\r\n"):
        reader, writer = await connect(alice, source="127.0.0.1", send=junk)
        assert (await closed_by_the_server(reader)).startswith(b"HTTP/1.0 400")
        writer.close()

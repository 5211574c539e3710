"""The remote API under bad input: every refusal is a 4xx with a JSON reason, nothing is stored,
and the daemon keeps working. Requests here are built and signed by hand, as a peer would."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import aiohttp

from flame.core.envelope import new_message_id, seal
from flame.core.models import Envelope, Inner, TextBody
from flame.core.signing import sign_request
from flame.daemon import Daemon
from flame.store import messages as message_store
from tests.cluster import Cluster, account_of, services_of


def envelope_from(
    sender: Daemon,
    to: Daemon,
    text: str,
    *,
    author: str | None = None,
    seq: int = 1,
    to_name: str | None = None,
) -> Envelope:
    s, r = services_of(sender).ctx, account_of(to)  # `to` may be locked
    inner = Inner(
        from_=author or s.me,
        to=to_name or r.username,
        id=new_message_id(),
        seq=seq,
        ts=int(time.time() * 1000),
        kind="text",
        body=TextBody(text=text),
    )
    return seal(s.keys.identity().exchange, to_name or r.username, r.x25519_key, inner)


class Peer:
    """Signed raw requests from one daemon's identity to another daemon's peer port."""

    def __init__(self, sender: Daemon, target: Daemon) -> None:
        self.sender, self.target = services_of(sender).ctx, target
        self.url = f"http://127.0.0.1:{target.peer_port}"
        self.last: tuple[dict[str, str], bytes] | None = None

    def sign(
        self, body: bytes, path: str = "/api/v1/envelopes", audience: str | None = None
    ) -> dict[str, str]:
        headers = sign_request(
            self.sender.keys.identity(),
            self.sender.me,
            audience or account_of(self.target).username,
            "POST",
            path,
            f"127.0.0.1:{self.target.peer_port}",
            body,
            int(time.time()),
        )
        return {**headers, "Content-Type": "application/json"}

    async def post_raw(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                self.url + "/api/v1/envelopes", data=io.BytesIO(body), headers=headers
            ) as response:
                return response.status, await response.json()

    async def post(
        self, envelopes: list[Envelope] | None = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        body = (
            raw
            if raw is not None
            else json.dumps({"envelopes": [e.model_dump() for e in envelopes or []]}).encode()
        )
        headers = self.sign(body)
        self.last = (headers, body)
        return await self.post_raw(body, headers)


async def stored(node: Daemon) -> int:
    return await message_store.count_messages(services_of(node).ctx.db)


async def test_a_duplicate_delivery_changes_nothing(trio: Cluster) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    bob_ui = await trio.ui("bob")
    feed = await bob_ui.websocket()
    envelope = envelope_from(alice, bob, "once only")
    peer = Peer(alice, bob)
    status, reply = await peer.post([envelope])
    assert status == 200 and reply["results"][0]["status"] == "stored"
    status, reply = await peer.post([envelope])
    assert status == 200 and reply["results"][0]["status"] == "duplicate"
    status, reply = await peer.post([envelope, envelope])
    assert [r["status"] for r in reply["results"]] == ["duplicate", "duplicate"]
    assert await stored(bob) == 1
    await feed.wait_for(lambda e: e["type"] == "message")
    await bob_ui.send("alice", "after")  # our own message event proves no second arrival queued
    event = await feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "after"


async def test_a_locked_daemon_answers_503_and_the_message_waits(trio: Cluster) -> None:
    alice_ui = await trio.ui("alice")
    alice_feed = await alice_ui.websocket()
    await trio.stop_daemon("bob")
    bob = await trio.start_daemon("bob", unlocked=False)
    status, reply = await Peer(trio.daemons["alice"], bob).post(
        [envelope_from(trio.daemons["alice"], bob, "early")]
    )
    assert (status, reply["error"]) == (503, "locked")

    sent = await alice_ui.send("bob", "waiting for you")
    assert sent["state"] == "sending"
    bob_ui = await trio.ui("bob")  # logging in unlocks the daemon; presence brings delivery
    bob_feed = await bob_ui.websocket()
    if not [m for m in await bob_ui.messages("alice") if m["id"] == sent["id"]]:
        await bob_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["id"] == sent["id"]
        )
    await alice_feed.wait_for(
        lambda e: e["type"] == "message_state" and e["id"] == sent["id"] and e["state"] == "sent"
    )


async def test_nobody_can_preempt_a_message_by_reusing_its_id(trio: Cluster) -> None:
    alice, bob, carol = trio.daemons["alice"], trio.daemons["bob"], trio.daemons["carol"]
    real = envelope_from(alice, bob, "the real one")
    # carol saw the id on the wire and gets her own envelope with that id to bob first.
    s, r = services_of(carol).ctx, services_of(bob).ctx
    inner = Inner(
        from_="carol",
        to="bob",
        id=real.id,
        seq=1,
        ts=int(time.time() * 1000),
        kind="text",
        body=TextBody(text="decoy"),
    )
    decoy = seal(s.keys.identity().exchange, "bob", r.keys.account.x25519_key, inner)
    status, reply = await Peer(carol, bob).post([decoy])
    assert status == 200 and reply["results"][0]["status"] == "stored"
    status, reply = await Peer(alice, bob).post([real])
    assert status == 200 and reply["results"][0]["status"] == "stored"
    bob_ui = await trio.ui("bob")
    assert [m["text"] for m in await bob_ui.messages("alice")] == ["the real one"]
    assert [m["text"] for m in await bob_ui.messages("carol")] == ["decoy"]


async def test_a_backlog_larger_than_the_peers_body_limit_is_split_and_delivered(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice")
    settings = await cluster.enroll("bob", max_body_bytes=64 * 1024)
    bob = await cluster.start_daemon("bob", settings=settings)
    alice_ui = await cluster.ui("alice")
    feed = await alice_ui.websocket()
    await alice_ui.wait_status(feed, "bob", "online")
    await cluster.stop_daemon("bob")  # bob offline: a backlog of long messages builds up
    await feed.wait_for(lambda e: e["type"] == "presence" and e["status"] == "offline")
    texts = [f"{i:03d} " + "long words " * 1400 for i in range(12)]  # ~15 KB each: 180 KB
    sent = [await alice_ui.send("bob", text) for text in texts]
    bob = await cluster.start_daemon("bob", settings=settings)
    pending = {m["id"] for m in sent}
    while pending:
        event = await feed.wait_for(lambda e: e["type"] == "message_state")
        assert event["state"] in ("sent", "delivered"), event
        pending.discard(event["id"])
    received = await message_store.list_messages(
        services_of(bob).ctx.db, "alice", before=None, limit=50
    )
    assert [m.body["text"] for m in received] == texts
    assert alice

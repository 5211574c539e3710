"""Negotiation and fallback (PROTOCOL.md §14.2): a daemon pinned to version 1 (an older Flame) and
a version 2 daemon exchange messages, files and receipts under version 1, and the conversation
says there is no forward secrecy; `security.min_version = 2` refuses version 1 both ways with the
documented reason."""

from __future__ import annotations

from typing import Any

from flame.store import sessions as session_store
from tests.cluster import Cluster, Feed, UiClient, services_of
from tests.files_helpers import MIB, fetch, random_bytes, send_file, sha256, wait_state


async def pair(
    cluster: Cluster, alice: dict[str, Any], bob: dict[str, Any]
) -> tuple[UiClient, UiClient, Feed, Feed]:
    await cluster.start_directory()
    for name, security in (("alice", alice), ("bob", bob)):
        settings = await cluster.enroll(name)
        for key, value in security.items():
            setattr(settings.security, key, value)
        await cluster.start_daemon(name, settings=settings)
    a, b = await cluster.ui("alice"), await cluster.ui("bob")
    a_feed, b_feed = await a.websocket(), await b.websocket()
    await a.wait_status(a_feed, "bob", "online")
    await b.wait_status(b_feed, "alice", "online")
    return a, b, a_feed, b_feed


def state_is(message_id: str, state: str) -> Any:
    return lambda e: e["type"] == "message_state" and e["id"] == message_id and e["state"] == state


async def test_version_1_and_version_2_daemons_exchange_messages_files_and_receipts(
    cluster: Cluster,
) -> None:
    old, new, old_feed, new_feed = await pair(cluster, {"max_version": 1}, {})
    sent = await new.send("alice", "hello from version 2")
    await old_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["text"] == "hello from version 2"
    )
    await new_feed.wait_for(state_is(sent["id"], "delivered"))
    back = await old.send("bob", "hello from version 1")
    await new_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["text"] == "hello from version 1"
    )
    await old_feed.wait_for(state_is(back["id"], "delivered"))
    small, large = random_bytes(200 * 1024, seed=3), random_bytes(MIB + 5, seed=4)
    offers = [
        await send_file(new, "alice", "small.bin", small),
        await send_file(old, "bob", "large.bin", large),
    ]
    got_small = await wait_state(old_feed, offers[0]["file"]["transfer_id"], "complete")
    got_large = await wait_state(new_feed, offers[1]["file"]["transfer_id"], "complete")
    status, (body, _) = await fetch(old, "bob", got_small["transfer_id"])
    assert status == 200 and sha256(body) == sha256(small)
    status, (body, _) = await fetch(new, "alice", got_large["transfer_id"])
    assert status == 200 and sha256(body) == sha256(large)
    # Version 1 all along: no session on either side, and both conversations say so.
    for name, peer in (("alice", "bob"), ("bob", "alice")):
        db = services_of(cluster.daemons[name]).ctx.db
        assert not await session_store.has_sessions(db, peer)
    hello = await (await cluster.ui("bob")).get_json("/ui/api/contacts")
    assert [c["protocol_version"] for c in hello["contacts"] if c["username"] == "alice"] == [1]
    mine = await (await cluster.ui("alice")).get_json("/ui/api/contacts")
    assert [c["protocol_version"] for c in mine["contacts"] if c["username"] == "bob"] == [1]


async def test_two_version_2_daemons_use_a_session(cluster: Cluster) -> None:
    alice, _, a_feed, b_feed = await pair(cluster, {}, {})
    sent = await alice.send("bob", "forward secret")
    await b_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["text"] == "forward secret"
    )
    await a_feed.wait_for(state_is(sent["id"], "delivered"))  # the receipt, under v2
    for name, peer in (("alice", "bob"), ("bob", "alice")):
        assert await session_store.has_sessions(services_of(cluster.daemons[name]).ctx.db, peer)
    contacts = await alice.get_json("/ui/api/contacts")
    assert [c["protocol_version"] for c in contacts["contacts"]] == [2]
    # The file key travels in a ratchet-protected offer (PROTOCOL.md §14.4): bob opened the
    # offer from a session, then took the chunks that key seals.
    data = random_bytes(MIB + 3, seed=5)
    offer = await send_file(alice, "bob", "board.pdf", data)
    await wait_state(b_feed, offer["file"]["transfer_id"], "complete")
    bob_db = services_of(cluster.daemons["bob"]).ctx.db
    opened = await session_store.staged(bob_db, "alice", [offer["id"].split(":")[-1]])
    (inner,) = opened.values()
    assert inner is not None and inner.kind == "file_offer"


async def test_min_version_2_refuses_version_1_both_ways(cluster: Cluster) -> None:
    old, strict, old_feed, _ = await pair(cluster, {"max_version": 1}, {"min_version": 2})
    status, body = await strict.post("/ui/api/conversations/alice/messages", {"text": "no"})
    assert (status, body["error"]) == (409, "old_version")
    assert "speaks only protocol version 1" in body["message"]
    sent = await old.send("bob", "from an older Flame")
    failed = await old_feed.wait_for(state_is(sent["id"], "failed"))
    assert "does not accept protocol version 1" in failed["error"]
    assert await strict.messages("alice") == []

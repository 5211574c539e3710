"""Negotiation and fallback (PROTOCOL.md §14.2): a daemon pinned to version 1 (an older Flame) and
a version 2 daemon exchange messages, files and receipts under version 1, and the conversation
says there is no forward secrecy; `security.min_version = 2` refuses version 1 both ways with the
documented reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flame.store import sessions as session_store
from tests.cluster import Cluster, Feed, UiClient, eventually, services_of
from tests.files_helpers import MIB, fetch, random_bytes, send_file, sha256, wait_state

ROOT = Path(__file__).resolve().parents[2]


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


def refusals() -> tuple[str, str, str]:
    """PROTOCOL.md §14.2's sentences for `min_version = 2`: (sending, envelope, request)."""
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    rule = text[text.index("- `min_version = 2`, receiving:") :].split("\n- ", 1)[0]
    quoted = re.findall(r'"([^"]+\.)"', " ".join(rule.split()))
    envelope = next(q for q in quoted if q.endswith("§9)."))
    request = next(q for q in quoted if "requests" in q)
    sending = next(q for q in quoted if q.startswith("<peer>"))
    return sending, envelope, request


async def test_min_version_2_refuses_version_1_both_ways(cluster: Cluster) -> None:
    old, strict, old_feed, _ = await pair(cluster, {"max_version": 1}, {"min_version": 2})
    status, body = await strict.post("/ui/api/conversations/alice/messages", {"text": "no"})
    assert (status, body["error"]) == (409, "old_version")
    sending, _, request = refusals()
    assert body["message"] == sending.replace("<peer>", "alice")  # §14.2's words exactly
    sent = await old.send("bob", "from an older Flame")
    failed = await old_feed.wait_for(state_is(sent["id"], "failed"))
    assert failed["error"] == f"bob's daemon refused it: {request}"
    assert await strict.messages("alice") == []


async def test_the_signed_presence_lists_the_versions_and_a_sender_follows_it(
    cluster: Cluster,
) -> None:
    """PROTOCOL.md §14.2: each daemon's signed presence lists the versions its settings allow,
    and the sender goes by that record: bob, back on an older Flame (pinned to version 1), says
    so in his record, and alice's next message goes as version 1 although her session with him
    is still there."""
    alice, bob, _, b_feed = await pair(cluster, {}, {})
    alice_db = services_of(cluster.daemons["alice"]).ctx.db
    await alice.send("bob", "under version 2")
    event = await b_feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["protocol_version"] == 2
    found = await session_store.versions_of(alice_db, "bob")
    assert found is not None and found[0] == (1, 2) and found[1] > 0  # from a signed record

    await cluster.stop_daemon("bob")
    settings = cluster.settings_for("bob")
    settings.security.max_version = 1
    await cluster.start_daemon("bob", settings=settings)
    bob = await cluster.ui("bob")
    b_feed = await bob.websocket()

    async def bobs_versions() -> tuple[int, ...] | None:
        record = await session_store.versions_of(alice_db, "bob")
        return None if record is None else record[0]

    await eventually(bobs_versions, equals=(1,), timeout=20)  # his next signed record says so
    assert await session_store.has_sessions(alice_db, "bob")  # her session is still there
    await alice.send("bob", "as version 1 now")
    event = await b_feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "as version 1 now"
    assert event["message"]["protocol_version"] == 1
    _, contacts = await alice.get("/ui/api/contacts")
    assert [c["protocol_version"] for c in contacts["contacts"]] == [1]

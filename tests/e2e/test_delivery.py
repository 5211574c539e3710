"""Delivery details: receipts and their setting, ordering with reordered arrival, Retry-After,
and working through a directory outage (PROTOCOL.md §13)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from flame.store import outbox as outbox_store
from tests.cluster import Cluster, UiClient, eventually, services_of
from tests.e2e.test_peer_api import Peer, envelope_from
from tests.social import online_for


async def state_of(ui: UiClient, peer: str, message_id: str) -> str:
    return str(next(m["state"] for m in await ui.messages(peer) if m["id"] == message_id))


def delivered(message_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("id") == message_id and e.get("state") == "delivered"


async def test_delivered_then_read_receipts_reach_the_sender(trio: Cluster) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    feed = await alice.websocket()
    sent = await alice.send("bob", "tell me when you read this")
    await feed.wait_for(
        lambda e: (
            e["type"] == "message_state" and e["id"] == sent["id"] and e["state"] == "delivered"
        )
    )
    assert await state_of(alice, "bob", sent["id"]) == "delivered"
    await bob.open_conversation("alice")  # bob's page shows it: he has seen it
    await feed.wait_for(
        lambda e: e["type"] == "message_state" and e["id"] == sent["id"] and e["state"] == "read"
    )
    assert await state_of(alice, "bob", sent["id"]) == "read"


async def test_reading_the_history_changes_nothing_until_the_page_says_what_it_showed(
    trio: Cluster,
) -> None:
    await online_for(trio, "alice", "bob")  # delivered directly, not through a relay later
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    feed = await alice.websocket()
    first = await alice.send("bob", "one")
    second = await alice.send("bob", "two")
    for sent in (first, second):  # one receipt may carry both, in either order
        if not any(delivered(sent["id"])(e) for e in feed.seen):
            await feed.wait_for(delivered(sent["id"]))
    for _ in range(2):  # a GET, however often, marks nothing read and sends no receipt
        assert [m["text"] for m in await bob.messages("alice")] == ["one", "two"]
    _, contacts = await bob.get("/ui/api/contacts")
    assert [c["unread"] for c in contacts["contacts"] if c["username"] == "alice"] == [2]

    status, _ = await bob.post("/ui/api/conversations/alice/read", {"up_to": first["id"]})
    assert status == 200
    await feed.wait_for(lambda e: e.get("id") == first["id"] and e["state"] == "read")
    _, contacts = await bob.get("/ui/api/contacts")
    assert [c["unread"] for c in contacts["contacts"] if c["username"] == "alice"] == [1]
    assert await state_of(alice, "bob", second["id"]) == "delivered"  # not shown yet: not read


async def test_read_receipts_can_be_turned_off(trio: Cluster) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    status, reply = await bob.post("/ui/api/settings", {"read_receipts": False})
    assert status == 200 and reply == {"read_receipts": False}
    assert await bob.get("/ui/api/settings") == (200, {"read_receipts": False})
    feed = await alice.websocket()
    first = await alice.send("bob", "private reading")
    await feed.wait_for(lambda e: e.get("id") == first["id"] and e.get("state") == "delivered")
    await bob.messages("alice")
    await bob.post("/ui/api/conversations/alice/read", {})
    # A later message proves the pipe is clear: its delivered receipt came, no read for either.
    second = await alice.send("bob", "and another")
    await feed.wait_for(lambda e: e.get("id") == second["id"] and e.get("state") == "delivered")
    assert [m["state"] for m in await alice.messages("bob")] == ["delivered", "delivered"]
    assert not [e for e in feed.seen if e.get("state") == "read"]


async def test_reordered_arrival_is_shown_in_the_senders_order(trio: Cluster) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    envelopes = [envelope_from(alice, bob, f"number {n}", seq=n) for n in (1, 2, 3)]
    peer = Peer(alice, bob)
    for index in (2, 0, 1):  # 3 arrives first, then 1, then 2
        status, _ = await peer.post([envelopes[index]])
        assert status == 200
    bob_ui = await trio.ui("bob")
    assert [m["text"] for m in await bob_ui.messages("alice")] == [
        "number 1",
        "number 2",
        "number 3",
    ]
    assert [m["seq"] for m in await bob_ui.messages("alice")] == [1, 2, 3]


async def test_the_outbox_honours_retry_after(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    feed = await alice.websocket()
    await alice.wait_status(feed, "bob", "online")
    bob = trio.daemons["bob"]
    assert bob.supervisor is not None
    await bob.supervisor.stop()  # bob locks, as before a login: no loops (none to use the keys),
    services_of(bob).ctx.keys.lock()  # and no keys: 503 with Retry-After: 30
    before = time.time()
    await alice.send("bob", "wait for me")
    db = services_of(trio.daemons["alice"]).ctx.db

    async def scheduled() -> float:
        rows = await db.fetchall("SELECT attempts, next_attempt_at FROM outbox")
        return float(rows[0]["next_attempt_at"]) if rows and rows[0]["attempts"] else 0.0

    async def tried() -> bool:
        return await scheduled() > 0

    await eventually(tried, equals=True)
    assert await scheduled() - before >= 29  # not the 0.05 s backoff of the test settings
    assert await outbox_store.pending_count(db) == 1


async def test_a_directory_outage_degrades_and_recovers_by_itself(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    feed = await alice.websocket()
    await alice.wait_status(feed, "bob", "online")
    await alice.wait_status(feed, "carol", "online")
    directory = trio.directory
    assert directory is not None and directory.listener is not None
    port = directory.listener.port
    await directory.stop()

    await feed.wait_for(lambda e: e["type"] == "directory" and e["state"] == "degraded")
    fresh = UiClient(trio.daemons["alice"])  # a new login works from the local keystore
    trio.clients.append(fresh)
    me = await fresh.login()
    assert me["directory"] == "degraded"

    bob = await trio.ui("bob")
    bob_feed = await bob.websocket()
    sent = await alice.send("bob", "the directory is down, we are not")
    await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["id"] == sent["id"])

    # Probes are signed hellos (PROTOCOL.md §13.5, §7.1): bob appearing offline gives alice the
    # public answer, so she shows him offline; shown again, his full answer brings him back.
    await bob.put("/ui/api/status", {"status": "offline"})
    await alice.wait_status(feed, "bob", "offline")
    await bob.put("/ui/api/status", {"status": "online"})
    await alice.wait_status(feed, "bob", "online")

    # Probes notice a peer going away without the directory's help.
    carol = trio.daemons["carol"]
    assert carol.supervisor is not None
    await trio.stop_daemon("carol")
    await feed.wait_for(
        lambda e: e["type"] == "presence" and e["username"] == "carol" and e["status"] == "offline"
    )

    await trio.start_directory(port=port)
    await feed.wait_for(lambda e: e["type"] == "directory" and e["state"] == "ok", timeout=20)
    status, body = await alice.get("/ui/api/me")
    assert status == 200 and body["directory"] == "ok"


async def test_a_recipient_coming_online_ends_the_senders_backoff(cluster: Cluster) -> None:
    """alice's first attempts fail while bob is away, and her next retry is a minute off; bob's
    presence makes the queue due at once (PROTOCOL.md §7.2), so he has it well before that."""
    await cluster.start_directory()
    await cluster.add_user("alice", retry_base_s=60.0, retry_max_s=60.0, relay_count=0)
    await cluster.add_user("bob")
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    await alice.wait_status(feed, "bob", "online")
    await cluster.stop_daemon("bob")
    await alice.wait_status(feed, "bob", "offline")
    sent = await alice.send("bob", "are you back?")
    outbox = services_of(cluster.daemons["alice"]).ctx.db

    async def backing_off() -> bool:
        row = await outbox.fetchone("SELECT attempts, next_attempt_at FROM outbox")
        return row is not None and row[0] >= 1 and row[1] > time.time() + 20

    await eventually(backing_off, equals=True)

    await cluster.start_daemon("bob")
    await feed.wait_for(
        lambda e: e["type"] == "message_state" and e["id"] == sent["id"] and e["state"] == "sent",
        timeout=15,
    )


async def test_a_delivery_worker_that_crashes_is_held_back_and_others_go_on(
    trio: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one peer's worker (here: a row of alice's outbox the store cannot read) is logged
    and that peer waits longer after each crash; the loop never spins, and carol is served."""
    alice, carol = await trio.ui("alice"), await trio.ui("carol")
    await trio.stop_daemon("bob")
    db = services_of(trio.daemons["alice"]).ctx.db
    await db.execute(
        "INSERT INTO outbox (message_id, kind, peer, envelope, next_attempt_at, created_at,"
        " expires_at) VALUES ('broken', 'text', 'bob', '{}', 0, 0, 1e12)"
    )
    services_of(trio.daemons["alice"]).ctx.wake.outbox.set()

    def crashes() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "delivery to bob crashed" in r.getMessage()]

    async def crashed_three_times() -> bool:
        return len(crashes()) >= 3

    carol_feed = await carol.websocket()
    await alice.send("carol", "still served")
    await carol_feed.wait_for(lambda e: e["type"] == "message")
    await eventually(crashed_three_times, equals=True)
    await trio.stop_daemon("alice")
    seen = crashes()
    for earlier, later in itertools.pairwise(seen):
        waited = float(earlier.getMessage().split(" in ")[1].split(" s")[0])  # %.1f, rounded
        assert waited >= 0.5 and later.created - earlier.created >= waited - 0.051
    for r in seen:
        assert r.exc_info is not None
        r.expected = True  # a bug on purpose: logged as one

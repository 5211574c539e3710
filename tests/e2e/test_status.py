"""Statuses: chosen in the UI, carried in the signed presence, seen by contacts; online turns into
away by itself when idle or when no UI is open (short times configured here)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from flame.core.models import Envelope
from flame.daemon import Daemon
from flame.devtools.ui import Feed
from flame.store import messages as message_store
from tests.cluster import Cluster, UiClient, services_of, verifier_of
from tests.social import hello_from, online_for, post_envelopes, sealed, signed_request

LIMITS = {"idle_away_s": 600.0, "no_ui_away_s": 60.0}


def my_status(choice: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["type"] == "my_status" and event["choice"] == choice


async def test_status_changes_reach_contacts(trio: Cluster) -> None:
    await online_for(trio, "bob", "alice")
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    for choice in ("busy", "away", "online"):
        status, answer = await alice_ui.put("/ui/api/status", {"status": choice})
        assert status == 200 and answer == {"type": "my_status", "choice": choice, "status": choice}
        await alice_feed.wait_for(my_status(choice))
        await bob_ui.wait_status(bob_feed, "alice", choice)

    await appear_offline_then_come_back(trio, alice_ui, bob_ui, alice_feed, bob_feed)

    status, answer = await alice_ui.put("/ui/api/status", {"status": "sleeping"})
    assert (status, answer["error"]) == (400, "bad_status")

    # The choice is kept across a restart.
    await alice_feed.close()
    await trio.stop_daemon("alice")
    await trio.start_daemon("alice")
    again = await trio.ui("alice")
    _, mine = await again.get("/ui/api/status")
    assert mine["choice"] == "offline" and mine["status"] == "offline"
    assert await hello_says_locked(trio, "alice")  # hidden from the first moment
    await again.put("/ui/api/status", {"status": "online"})
    await bob_ui.wait_status(bob_feed, "alice", "online")
    assert not await hello_says_locked(trio, "alice")


async def hello_says_locked(cluster: Cluster, name: str) -> bool:
    """What a member learns from a signed hello (PROTOCOL.md §7.1): appearing offline, `name` is a
    locked daemon to its contacts too; anyone else learns the same from the public answer."""
    node, asker = cluster.daemons[name], cluster.daemons["carol" if name == "bob" else "bob"]
    answer, public = await hello_from(asker, node), await hello_from(None, node)
    if answer == {"locked": True}:
        assert public == answer
        return True
    assert answer["username"] == name and answer["locked"] is False
    assert public == {"locked": False}
    return False


async def appear_offline_then_come_back(
    trio: Cluster, alice_ui: UiClient, bob_ui: UiClient, alice_feed: Feed, bob_feed: Feed
) -> None:
    """Appear offline (PROTOCOL.md §12.2): to every peer alice is a locked daemon. No record at
    the directory, hello says locked, a message to her waits in its sender's outbox; what she
    sends still goes. Once she shows herself again, what waited arrives."""
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    await alice_ui.put("/ui/api/status", {"status": "offline"})
    await bob_ui.wait_status(bob_feed, "alice", "offline")
    entry = await services_of(bob).client.directory_user(trio.directory_endpoint(), "alice")
    assert entry.presence is None  # withdrawn: no address, no status, as a stopped daemon
    assert await hello_says_locked(trio, "alice")
    status, reply, headers = await post_envelopes(bob, alice, [sealed(bob, alice, text="direct")])
    assert (status, reply["error"]) == (503, "locked")  # a locked daemon's very answer
    assert headers["Retry-After"] == "30"
    sent = await bob_ui.send("alice", "are you there?")
    await services_of(bob).delivery.deliver_to_peer("alice")
    row = await services_of(bob).ctx.db.fetchone(
        "SELECT attempts FROM outbox WHERE message_id=?", (sent["id"],)
    )
    assert row is not None and row["attempts"] >= 1  # tried, refused as locked, still queued
    assert await message_store.count_messages(services_of(alice).ctx.db, "bob") == 0
    await alice_ui.send("bob", "quietly, yes")
    await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["direction"] == "in")
    assert await bob_ui.status_of("alice") == "offline"

    await alice_ui.put("/ui/api/status", {"status": "online"})
    event = await alice_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["direction"] == "in"
    )
    assert event["message"]["id"] == sent["id"]
    assert not await hello_says_locked(trio, "alice")
    await bob_ui.wait_status(bob_feed, "alice", "online")
    await alice_ui.put("/ui/api/status", {"status": "offline"})
    await bob_ui.wait_status(bob_feed, "alice", "offline")


async def test_idle_and_no_ui_turn_online_into_away_and_back(cluster: Cluster) -> None:
    await cluster.start_directory()
    await cluster.add_user("alice", status__idle_away_s=1.0, status__no_ui_away_s=0.5)
    await cluster.add_user("bob")
    alice = services_of(cluster.daemons["alice"]).status
    bob_ui = await cluster.ui("bob")
    bob_feed = await bob_ui.websocket()

    # A UI is open but nobody touches it: away after idle_away_s, online again on activity.
    alice_ui = await cluster.ui("alice")
    alice_feed = await alice_ui.websocket()
    await bob_ui.wait_status(bob_feed, "alice", "online")
    await alice_feed.wait_for(lambda e: e["type"] == "my_status" and e["status"] == "away")
    assert alice.choice == "online"
    await bob_ui.wait_status(bob_feed, "alice", "away")
    await alice_feed.ws.send_json({"type": "activity"})
    await bob_ui.wait_status(bob_feed, "alice", "online")

    # The last UI closes: away after no_ui_away_s; a UI opening again brings it back.
    await alice_feed.close()
    await bob_ui.wait_status(bob_feed, "alice", "away")
    assert alice.ui_sessions == 0
    other = UiClient(cluster.daemons["alice"])
    cluster.clients.append(other)
    await other.login()
    feed = await other.websocket()
    await bob_ui.wait_status(bob_feed, "alice", "online")
    await feed.close()

    # A chosen status does not drift to away.
    await other.put("/ui/api/status", {"status": "busy"})
    await bob_ui.wait_status(bob_feed, "alice", "busy")
    await alice_ui.put("/ui/api/status", {"status": "busy"})  # idempotent
    assert alice.reported == "busy"


async def deposit(depositor: Daemon, relay: Daemon, envelope: Envelope) -> None:
    body = json.dumps(
        {"deposits": [{"envelope": envelope.model_dump(), "expires_at": int(time.time()) + 3600}]}
    ).encode()
    status, reply, _ = await signed_request(
        depositor, relay, "POST", "/api/v1/relay/deposits", body
    )
    assert status == 200 and reply["results"][0]["status"] == "stored", reply


async def test_appearing_offline_collects_nothing_and_hands_nothing_over(cluster: Cluster) -> None:
    """Relays are peers too: while alice appears offline she does not ask them for what they
    hold for her, nor hand over what she holds for others, though both would be due every 0.1 s.
    Once she shows herself, both go."""
    await cluster.start_directory()
    alice = await cluster.add_user("alice", relay_retry_s=0.1)
    bob, carol = await cluster.add_user("bob"), await cluster.add_user("carol")
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    await online_for(cluster, "alice", "bob", "carol")
    await online_for(cluster, "bob", "alice", "carol")

    await bob_ui.put("/ui/api/status", {"status": "offline"})  # so alice keeps carol's deposit
    await alice_ui.wait_status(alice_feed, "bob", "offline")
    await deposit(carol, alice, sealed(carol, bob, text="held by alice"))
    await alice_ui.put("/ui/api/status", {"status": "offline"})
    await bob_ui.wait_status(bob_feed, "alice", "offline")
    await bob_ui.put("/ui/api/status", {"status": "online"})  # bob is due his deposit now
    await alice_ui.wait_status(alice_feed, "bob", "online")
    await deposit(carol, bob, sealed(carol, alice, text="held by bob"))

    def arrived(text: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["type"] == "message" and e["message"]["text"] == text

    for feed, text in ((alice_feed, "held by bob"), (bob_feed, "held by alice")):
        with pytest.raises(TimeoutError):  # ten rounds of each loop: nothing moves
            await feed.wait_for(arrived(text), timeout=1.0)
    assert await message_store.count_messages(services_of(alice).ctx.db, "carol") == 0
    assert await message_store.count_messages(services_of(bob).ctx.db, "carol") == 0

    await alice_ui.put("/ui/api/status", {"status": "online"})
    await alice_feed.wait_for(arrived("held by bob"))
    await bob_feed.wait_for(arrived("held by alice"))


async def test_appearing_offline_sends_no_probes_while_the_directory_is_down(trio: Cluster) -> None:
    """Degraded mode asks peers directly whether they are up (PROTOCOL.md §13.5): a signed hello
    that would tell them alice is. Hidden, she asks nobody, so she does not notice carol go."""
    alice_ui = await trio.ui("alice")
    feed = await alice_ui.websocket()
    await alice_ui.wait_status(feed, "carol", "online")
    await alice_ui.put("/ui/api/status", {"status": "offline"})
    directory = trio.directory
    assert directory is not None
    await directory.stop()
    await feed.wait_for(lambda e: e["type"] == "directory" and e["state"] == "degraded")
    await trio.stop_daemon("carol")

    def carol_offline(e: dict[str, Any]) -> bool:
        return (e["type"], e.get("username"), e.get("status")) == ("presence", "carol", "offline")

    with pytest.raises(TimeoutError):  # five probe intervals
        await feed.wait_for(carol_offline, timeout=1.0)
    await alice_ui.put("/ui/api/status", {"status": "online"})
    await feed.wait_for(carol_offline)


def requests_from(node: Daemon, user: str) -> int:
    """How many requests signed (or MAC'd) by `user` `node`'s daemon verified: each leaves its
    nonce in the verifier's cache (PROTOCOL.md §4.3 step 8) for ten minutes."""
    return sum(1 for who, _ in verifier_of(node).nonces.seen if who == user)


async def test_appearing_offline_nothing_goes_to_a_peer_by_itself(cluster: Cluster) -> None:
    """Unlocked with "offline" chosen, alice's daemon calls no peer by itself (PROTOCOL.md §12.2),
    though every loop has work for one: contacts' profiles to refresh every 0.1 s, a message for
    bob due the moment he is back (and due at a relay after 0.2 s), her new profile to push. bob's
    and carol's daemons verify no request of hers. What she writes to carol goes, to carol alone,
    and bob still hears nothing; once she shows herself, everything that waited reaches him."""
    quick: dict[str, Any] = {"profiles__refresh_s": 0.1, "relay_after_s": 0.2, "relay_retry_s": 0.1}
    await cluster.start_directory()
    await cluster.add_user("alice", **quick)
    bob, carol = await cluster.add_user("bob"), await cluster.add_user("carol")
    await online_for(cluster, "alice", "bob", "carol")
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    await bob_ui.put("/ui/api/status", {"status": "offline"})
    await alice_ui.wait_status(alice_feed, "bob", "offline")
    waiting = await alice_ui.send("bob", "written before she hid")
    await alice_ui.put("/ui/api/status", {"status": "offline"})
    await alice_feed.close()
    await cluster.stop_daemon("alice")  # nothing of hers in flight from here on
    before = {node: requests_from(node, "alice") for node in (bob, carol)}
    await bob_ui.put("/ui/api/status", {"status": "online"})

    alice = await cluster.start_daemon("alice", **quick)
    alice_ui = await cluster.ui("alice")
    alice_feed = await alice_ui.websocket()
    await alice_ui.wait_status(alice_feed, "bob", "online")  # she knows: his queue is due
    status, _ = await alice_ui.put("/ui/api/profile", {"display_name": "Alice, hidden"})
    assert status == 200
    outbox = services_of(alice).ctx.db
    attempts = await outbox.fetchone(
        "SELECT attempts FROM outbox WHERE message_id=?", (waiting["id"],)
    )

    def from_alice(e: dict[str, Any]) -> bool:
        return e["type"] in ("message", "profile") and "alice" in (
            e.get("message", {}).get("author"),
            e.get("profile", {}).get("username"),
        )

    with pytest.raises(TimeoutError):  # ten rounds of profiles, five of relays: nothing moves
        await bob_feed.wait_for(from_alice, timeout=1.0)
    assert {node: requests_from(node, "alice") for node in (bob, carol)} == before
    again = await outbox.fetchone(
        "SELECT attempts FROM outbox WHERE message_id=?", (waiting["id"],)
    )
    assert again == attempts  # held, not tried and refused: its backoff did not grow

    carol_ui = await cluster.ui("carol")
    carol_feed = await carol_ui.websocket()
    await alice_ui.send("carol", "only you know I am here")
    await carol_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["author"] == "alice"
    )
    assert requests_from(carol, "alice") > before[carol]
    assert requests_from(bob, "alice") == before[bob]

    await alice_ui.put("/ui/api/status", {"status": "online"})
    arrived = await bob_feed.wait_for(lambda e: e["type"] == "message")
    assert arrived["message"]["id"] == waiting["id"]
    await bob_feed.wait_for(
        lambda e: e["type"] == "profile" and e["profile"]["display_name"] == "Alice, hidden"
    )

"""Statuses: chosen in the UI, carried in the signed presence, seen by contacts; online turns into
away by itself when idle or when no UI is open (short times configured here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cluster import Cluster, UiClient, services_of
from tests.social import online_for

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

    # Appear offline: contacts see offline, yet the daemon still receives and sends.
    await alice_ui.put("/ui/api/status", {"status": "offline"})
    await bob_ui.wait_status(bob_feed, "alice", "offline")
    await bob_ui.send("alice", "are you there?")
    event = await alice_feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "are you there?"
    await alice_ui.send("bob", "quietly, yes")
    await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["direction"] == "in")
    assert await bob_ui.status_of("alice") == "offline"

    status, answer = await alice_ui.put("/ui/api/status", {"status": "sleeping"})
    assert (status, answer["error"]) == (400, "bad_status")

    # The choice is kept across a restart.
    await alice_feed.close()
    await trio.stop_daemon("alice")
    await trio.start_daemon("alice")
    again = await trio.ui("alice")
    _, mine = await again.get("/ui/api/status")
    assert mine["choice"] == "offline" and mine["status"] == "offline"
    await again.put("/ui/api/status", {"status": "online"})
    await bob_ui.wait_status(bob_feed, "alice", "online")


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

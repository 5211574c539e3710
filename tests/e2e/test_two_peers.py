"""End to end: a real directory and three daemons on loopback, talking over real HTTP."""

from __future__ import annotations

from tests.cluster import Cluster


async def test_alice_and_bob_talk_live_over_the_ui_websocket(trio: Cluster) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()

    sent = await alice.send("bob", "hello")
    assert sent["state"] == "sending" and sent["direction"] == "out"
    event = await bob_feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "hello"
    assert event["message"]["author"] == "alice" and event["message"]["direction"] == "in"
    await alice_feed.wait_for(lambda e: e["type"] == "message_state" and e["state"] == "sent")

    await bob.send("alice", "hi alice")
    reply = await alice_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["direction"] == "in"
    )
    assert reply["message"]["text"] == "hi alice"
    assert [m["text"] for m in await alice.messages("bob")] == ["hello", "hi alice"]
    assert [m["text"] for m in await bob.messages("alice")] == ["hello", "hi alice"]

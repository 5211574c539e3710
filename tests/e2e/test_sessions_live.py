"""A version 2 conversation keeps its Olm session live in memory (services/sessions.py): sealing
and opening on the same session, messages one way and receipts the other, unpickle nothing once
it is under way (an unpickling costs about as much as the rest of the ratchet's work)."""

from __future__ import annotations

from typing import Any

import pytest

from flame.core import ratchet
from tests.cluster import Cluster


async def test_messages_and_receipts_both_ways_unpickle_no_session(
    trio: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()

    def delivered(feed: Any, message: dict[str, Any]) -> Any:
        return feed.wait_for(
            lambda e: (
                e["type"] == "message_state"
                and e["id"] == message["id"]
                and e["state"] == "delivered"
            )
        )

    await delivered(alice_feed, await alice.send("bob", "the session starts"))
    await delivered(bob_feed, await bob.send("alice", "and goes both ways"))

    unpickled: list[str] = []
    original = ratchet.session_from

    def counting(pickle: str, key: bytes) -> Any:
        unpickled.append(pickle)
        return original(pickle, key)

    monkeypatch.setattr(ratchet, "session_from", counting)
    for n in range(5):
        await delivered(alice_feed, await alice.send("bob", f"from alice {n}"))
        await delivered(bob_feed, await bob.send("alice", f"from bob {n}"))
    assert unpickled == []
    texts = [m["text"] for m in await bob.messages("alice")]
    assert texts[-2:] == ["from alice 4", "from bob 4"]

"""Files end to end (PROTOCOL.md §11): real daemons on loopback, real uploads through the UI API,
real chunk streams between daemons, and the bytes compared at the far end."""

from __future__ import annotations

from tests.cluster import Cluster
from tests.files_helpers import (
    fetch,
    random_bytes,
    send_file,
    sha256,
    transfer_of,
    wait_state,
)

MIB = 1024 * 1024


async def test_a_multi_mib_file_arrives_intact_and_verified(trio: Cluster) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
    data = random_bytes(5 * MIB + 12345)

    offer = await send_file(alice, "bob", "board pack.pdf", data, "application/pdf")
    transfer_id = offer["file"]["transfer_id"]
    assert offer["kind"] == "file_offer" and offer["file"]["name"] == "board pack.pdf"
    assert "key" not in offer["file"] and "token" not in offer["file"]

    arrived = await bob_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["kind"] == "file_offer"
    )
    assert arrived["message"]["file"]["size"] == len(data)
    done = await wait_state(bob_feed, transfer_id, "complete")
    assert done["bytes"] == len(data) and done["direction"] == "in"
    await wait_state(alice_feed, transfer_id, "complete")

    status, (body, headers) = await fetch(bob, "alice", transfer_id)
    assert status == 200 and sha256(body) == sha256(data)
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment;")
    received = await transfer_of(trio.daemons["bob"], "alice", "in", transfer_id)
    assert received.held_bytes == len(data) and received.state == "complete"
    sent = await transfer_of(trio.daemons["alice"], "bob", "out", transfer_id)
    assert sent.sent_bytes == len(data)  # every byte once: nothing resent

    listed = await bob.messages("alice")
    assert [m["file"]["state"] for m in listed] == ["complete"]

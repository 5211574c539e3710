"""Files end to end (PROTOCOL.md §11): real daemons on loopback, real uploads through the UI API,
real chunk streams between daemons, and the bytes compared at the far end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flame.core.hello import FEATURES
from tests.cluster import Cluster, eventually, services_of
from tests.files_helpers import (
    MIB,
    Proxy,
    announce,
    bob_behind,
    fetch,
    file_state,
    files_on_disk,
    png_bytes,
    progress,
    put_content,
    random_bytes,
    send_file,
    sha256,
    slow_alice,
    transfer_of,
    wait_state,
)


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


SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>window.pwned=1</script></svg>'


async def test_files_are_served_safely_inline_only_when_their_bytes_prove_media(
    trio: Cluster,
) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    bob_feed = await bob.websocket()
    cases = [
        ("photo.png", png_bytes(), "image/png", "image/png"),
        ("logo.svg", SVG, "image/svg+xml", None),
        ("fake.png", b"<!doctype html><script>window.pwned=1</script>", "image/png", None),
    ]
    for name, data, declared, inline_type in cases:
        offer = await send_file(alice, "bob", name, data, declared)
        transfer_id = offer["file"]["transfer_id"]
        done = await wait_state(bob_feed, transfer_id, "complete")
        assert done["media"] == ("image" if inline_type else None), name
        for ui, peer in ((bob, "alice"), (alice, "bob")):  # the recipient's copy and the sender's
            status, (body, headers) = await fetch(ui, peer, transfer_id)
            assert status == 200 and body == data
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert (
                headers["Content-Security-Policy"]
                == "default-src 'none'; sandbox; frame-ancestors 'none'"
            )
            if inline_type:
                assert headers["Content-Type"] == inline_type
                assert headers["Content-Disposition"].startswith("inline;")
            else:
                assert headers["Content-Type"] == "application/octet-stream"
                assert headers["Content-Disposition"].startswith("attachment;")
        status, (_, headers) = await fetch(bob, "alice", transfer_id, "?download=1")
        assert headers["Content-Disposition"].startswith("attachment;")
        assert headers["Content-Type"] == "application/octet-stream"

    # Range requests work (audio and video seek with them).
    async with bob.session.get(
        f"/ui/api/conversations/alice/files/{transfer_id}/content", headers={"Range": "bytes=2-5"}
    ) as response:
        assert response.status == 206 and await response.read() == cases[-1][1][2:6]


async def test_a_tampered_chunk_is_refused_and_sent_again(cluster: Cluster) -> None:
    """What catches a damaged chunk when nothing below does: so plain HTTP, by its setting (over
    TLS the same byte breaks the connection first, the next test)."""
    plain: dict[str, Any] = {"insecure_plain_http": True}
    await cluster.start_directory(**plain)
    proxy = await Proxy(scheme="http").start()  # between alice and bob: damages one byte once
    try:
        alice_ui, alice_feed, bob_ui, bob_feed = await bob_behind(cluster, proxy, **plain)
        data = random_bytes(6 * MIB)
        proxy.corrupt_after = 3 * MIB + 5000  # a byte of chunk 3 (1 MiB chunks)

        offer = await send_file(alice_ui, "bob", "contract.pdf", data)
        transfer_id = offer["file"]["transfer_id"]
        refused = await alice_feed.wait_for(
            lambda e: file_state(transfer_id, "waiting")(e) and bool(e["file"]["error"])
        )
        assert "Chunk 3 does not verify" in refused["file"]["error"]
        assert refused["file"]["bytes"] == 3 * MIB  # what bob kept
        resumed = await wait_state(alice_feed, transfer_id, "sending")
        assert resumed["bytes"] == 3 * MIB  # chunks 0-2 were kept: only the rest is sent again
        await wait_state(bob_feed, transfer_id, "complete")
        await wait_state(alice_feed, transfer_id, "complete")

        assert proxy.corrupted.is_set()
        status, (body, _) = await fetch(bob_ui, "alice", transfer_id)
        assert status == 200 and sha256(body) == sha256(data)
        sent = await transfer_of(cluster.daemons["alice"], "bob", "out", transfer_id)
        assert len(data) < sent.sent_bytes <= 2 * len(data) - 3 * MIB
    finally:
        await proxy.close()


async def test_a_byte_changed_on_the_wire_breaks_tls_and_the_transfer_resumes(
    cluster: Cluster,
) -> None:
    """An active attacker on the path cannot alter what crosses it: TLS refuses the damaged
    record, the connection ends, nothing damaged is kept, and the file resumes and arrives."""
    await cluster.start_directory()
    proxy = await Proxy().start()
    try:
        alice_ui, alice_feed, bob_ui, bob_feed = await bob_behind(cluster, proxy)
        data = random_bytes(6 * MIB, seed=5)
        proxy.corrupt_after = 3 * MIB + 5000

        offer = await send_file(alice_ui, "bob", "ledger.xlsx", data)
        transfer_id = offer["file"]["transfer_id"]
        cut = await alice_feed.wait_for(
            lambda e: file_state(transfer_id, "waiting")(e) and bool(e["file"]["error"])
        )
        assert "does not verify" not in cut["file"]["error"]  # no damaged chunk reached bob
        await wait_state(bob_feed, transfer_id, "complete")
        assert proxy.corrupted.is_set()
        status, (body, _) = await fetch(bob_ui, "alice", transfer_id)
        assert status == 200 and sha256(body) == sha256(data)
    finally:
        await proxy.close()


async def test_a_file_for_an_offline_recipient_waits_and_arrives_when_it_comes_online(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    await cluster.add_user("alice")
    bob_settings = await cluster.enroll("bob")
    await cluster.start_daemon("bob", settings=bob_settings)
    alice = await cluster.ui("alice")
    alice_feed = await alice.websocket()
    await alice.wait_status(alice_feed, "bob", "online")
    await cluster.stop_daemon("bob")
    await alice.wait_status(alice_feed, "bob", "offline")

    data = random_bytes(3 * MIB + 1, seed=7)
    offer = await send_file(alice, "bob", "minutes.txt", data, "text/plain")
    transfer_id = offer["file"]["transfer_id"]
    assert offer["state"] == "sending"  # the offer waits in the outbox
    status, view = await alice.get(f"/ui/api/conversations/bob/files/{transfer_id}")
    assert status == 200 and view["file"]["state"] == "waiting"

    await cluster.start_daemon("bob", settings=bob_settings)
    bob = await cluster.ui("bob")
    bob_feed = await bob.websocket()
    status, view = await bob.get(f"/ui/api/conversations/alice/files/{transfer_id}")
    if status != 200 or view["file"]["state"] != "complete":
        await wait_state(bob_feed, transfer_id, "complete")
    status, (body, _) = await fetch(bob, "alice", transfer_id)
    assert status == 200 and sha256(body) == sha256(data)
    await wait_state(alice_feed, transfer_id, "complete")


async def test_a_restarted_sender_resumes_where_the_receiver_stopped(cluster: Cluster) -> None:
    await cluster.start_directory()
    alice_settings = await slow_alice(cluster)
    await cluster.start_daemon("alice", settings=alice_settings)
    await cluster.add_user("bob")
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
    await alice.wait_status(alice_feed, "bob", "online")
    data = random_bytes(6 * MIB, seed=3)
    offer = await send_file(alice, "bob", "recording.bin", data)
    transfer_id = offer["file"]["transfer_id"]
    await bob_feed.wait_for(progress(transfer_id, "receive", 2 * MIB))

    await alice_feed.close()  # (an unread UI feed would hold the daemon's shutdown for 2 s)
    await cluster.stop_daemon("alice")  # mid-transfer; bob keeps what he verified

    async def receiving() -> bool:  # bob records his last checkpoint as the cut request ends
        return bool(services_of(cluster.daemons["bob"]).files.receiving)

    await eventually(receiving, equals=False)
    held = (await transfer_of(cluster.daemons["bob"], "alice", "in", transfer_id)).held_bytes
    assert 2 * MIB <= held < len(data)
    alice_settings.files.send_rate_bytes_s = 0
    restarted = await cluster.start_daemon("alice", settings=alice_settings)
    await wait_state(bob_feed, transfer_id, "complete")

    status, (body, _) = await fetch(bob, "alice", transfer_id)
    assert status == 200 and sha256(body) == sha256(data)

    async def state() -> str:
        return (await transfer_of(restarted, "bob", "out", transfer_id)).state

    await eventually(state, equals="complete")  # alice records bob's answer just after he sends it
    sent = await transfer_of(restarted, "bob", "out", transfer_id)
    assert sent.sent_bytes == len(data) - held  # the restarted run sent only the remainder


async def test_the_sender_cancels_mid_transfer_and_nothing_is_kept(cluster: Cluster) -> None:
    await cluster.start_directory()
    await cluster.start_daemon("alice", settings=await slow_alice(cluster, rate=2 * MIB))
    await cluster.add_user("bob")
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
    await alice.wait_status(alice_feed, "bob", "online")
    offer = await send_file(alice, "bob", "draft.docx", random_bytes(8 * MIB))
    transfer_id = offer["file"]["transfer_id"]
    await bob_feed.wait_for(progress(transfer_id, "receive", MIB // 2))

    status, reply = await alice.post(f"/ui/api/conversations/bob/files/{transfer_id}/cancel", {})
    assert status == 200 and reply["file"]["state"] == "cancelled"
    cancelled = await wait_state(bob_feed, transfer_id, "cancelled")
    assert cancelled["error"] == "The sender cancelled it."
    for node in ("alice", "bob"):
        assert files_on_disk(cluster.daemons[node]) == [], node  # no copy, no partial
    status, _ = await fetch(bob, "alice", transfer_id)
    assert status == 404
    status, reply = await alice.post(f"/ui/api/conversations/bob/files/{transfer_id}/cancel", {})
    assert (status, reply["error"]) == (409, "transfer_closed")
    # The cancel is a control message: neither conversation lists it.
    assert [m["kind"] for m in await alice.messages("bob")] == ["file_offer"]
    assert [m["kind"] for m in await bob.messages("alice")] == ["file_offer"]


async def test_the_recipient_declines_mid_transfer_and_the_sender_stops(cluster: Cluster) -> None:
    await cluster.start_directory()
    await cluster.start_daemon("alice", settings=await slow_alice(cluster, rate=2 * MIB))
    await cluster.add_user("bob")
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
    await alice.wait_status(alice_feed, "bob", "online")
    offer = await send_file(alice, "bob", "holiday.mov", random_bytes(8 * MIB))
    transfer_id = offer["file"]["transfer_id"]
    await bob_feed.wait_for(progress(transfer_id, "receive", MIB // 2))

    status, reply = await bob.post(f"/ui/api/conversations/alice/files/{transfer_id}/decline", {})
    assert status == 200 and reply["file"]["state"] == "declined"
    declined = await wait_state(alice_feed, transfer_id, "declined")
    assert "bob declined it" in declined["error"]
    for node in ("alice", "bob"):
        assert files_on_disk(cluster.daemons[node]) == [], node
    sent = await transfer_of(cluster.daemons["alice"], "bob", "out", transfer_id)
    assert sent.state == "declined" and sent.held_bytes < 8 * MIB
    status, reply = await alice.post(f"/ui/api/conversations/bob/files/{transfer_id}/decline", {})
    assert (status, reply["error"]) == (404, "unknown_file")  # only the recipient declines


async def test_a_decline_told_by_the_chunk_route_alone_still_reads_declined(
    cluster: Cluster,
) -> None:
    """bob's daemon cannot send its `file_decline` (its loops are stopped), so alice learns of the
    decline only from the 410 `transfer_closed` that stops her stream (PROTOCOL.md §11.4): that
    answer carries the state, and her side says "declined", not "failed"."""
    await cluster.start_directory()
    await cluster.start_daemon("alice", settings=await slow_alice(cluster, rate=2 * MIB))
    bob_node = await cluster.add_user("bob")
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
    await alice.wait_status(alice_feed, "bob", "online")
    offer = await send_file(alice, "bob", "board.pdf", random_bytes(8 * MIB))
    transfer_id = offer["file"]["transfer_id"]
    await bob_feed.wait_for(progress(transfer_id, "receive", MIB // 2))
    assert bob_node.supervisor is not None
    await bob_node.supervisor.stop()  # the decline stays in bob's outbox

    status, reply = await bob.post(f"/ui/api/conversations/alice/files/{transfer_id}/decline", {})
    assert status == 200 and reply["file"]["state"] == "declined"
    ended = await wait_state(alice_feed, transfer_id, "declined", "failed")
    assert (ended["state"], ended["error"]) == ("declined", "bob declined it.")
    sent = await transfer_of(cluster.daemons["alice"], "bob", "out", transfer_id)
    assert sent.state == "declined"


async def test_an_offer_over_the_recipients_limit_fails_with_the_reason(cluster: Cluster) -> None:
    await cluster.start_directory()
    await cluster.add_user("alice")
    bob_settings = await cluster.enroll("bob")
    bob_settings.files.max_file_bytes = MIB
    await cluster.start_daemon("bob", settings=bob_settings)
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    status, reply = await announce(alice, "bob", "too big.bin", MIB + 1)
    assert status == 201
    transfer_id = reply["file"]["transfer_id"]
    status, reply = await put_content(alice, "bob", transfer_id, random_bytes(MIB + 1))
    # Streamed (§11.4), the offer may be refused while the upload still arrives: the upload then
    # stops, its transfer closed. Otherwise the upload completes and the offer fails after it.
    # Either way the transfer fails with the recipient's reason.
    if status != 201:
        assert status == 409 and reply["error"] == "transfer_closed", reply
    failed = await wait_state(feed, transfer_id, "failed")
    assert "larger than this recipient accepts" in failed["error"]
    for node in ("alice", "bob"):
        assert files_on_disk(cluster.daemons[node]) == [], node
    [offer] = await alice.messages("bob")
    assert offer["state"] == "failed" and offer["file"]["state"] == "failed"


@pytest.mark.parametrize("streams", [True, False], ids=["files-stream", "hash-first"])
async def test_cancelling_during_the_browsers_upload_stops_it_and_keeps_nothing(
    trio: Cluster, streams: bool
) -> None:
    bob = trio.daemons["bob"]
    assert bob.holder is not None
    if not streams:  # an earlier version: the file is offered only once uploaded (§11.4)
        bob.holder.features = tuple(f for f in FEATURES if f != "files-stream")
    alice = await trio.ui("alice")
    feed = await alice.websocket()
    bob_feed = await (await trio.ui("bob")).websocket()
    size = 4 * MIB
    status, reply = await announce(alice, "bob", "slides.pptx", size)
    assert status == 201
    transfer_id = reply["file"]["transfer_id"]
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield bytes(MIB)
        await release.wait()  # the user is still uploading when they cancel
        yield bytes(size - MIB)

    async def upload() -> int:
        async with alice.session.put(
            f"/ui/api/conversations/bob/files/{transfer_id}/content",
            data=body(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        ) as response:
            return response.status

    uploading = asyncio.create_task(upload())
    await feed.wait_for(progress(transfer_id, "upload", MIB))
    if streams:  # offered once its first chunk was stored
        await bob_feed.wait_for(lambda e: e["type"] == "message")
    status, reply = await alice.post(f"/ui/api/conversations/bob/files/{transfer_id}/cancel", {})
    assert status == 200 and reply["file"]["state"] == "cancelled"
    release.set()
    assert await uploading == 409
    assert files_on_disk(trio.daemons["alice"]) == []
    if streams:  # the cancel follows the offer, and bob drops what he holds
        await wait_state(bob_feed, transfer_id, "cancelled")
        assert files_on_disk(bob) == []
        [offer] = await alice.messages("bob")
        assert offer["file"]["state"] == "cancelled"
    else:
        assert await alice.messages("bob") == []  # never offered


async def test_a_cut_network_resumes_from_the_last_verified_chunk(cluster: Cluster) -> None:
    await cluster.start_directory()
    proxy = await Proxy().start()
    try:
        alice = await slow_alice(cluster)
        alice_ui, alice_feed, bob_ui, bob_feed = await bob_behind(cluster, proxy, alice)
        data = random_bytes(6 * MIB, seed=21)
        offer = await send_file(alice_ui, "bob", "archive.zip", data)
        transfer_id = offer["file"]["transfer_id"]
        await bob_feed.wait_for(progress(transfer_id, "receive", 2 * MIB))

        proxy.refusing = True  # the network goes down: connections cut, new ones refused
        proxy.cut()
        await alice_feed.wait_for(
            lambda e: file_state(transfer_id, "waiting")(e) and bool(e["file"]["error"])
        )
        first_run = (
            await transfer_of(cluster.daemons["alice"], "bob", "out", transfer_id)
        ).sent_bytes
        proxy.refusing = False  # and comes back
        resumed = await wait_state(alice_feed, transfer_id, "sending")
        kept = resumed["bytes"]
        assert 2 * MIB <= kept <= first_run < len(data)
        await wait_state(alice_feed, transfer_id, "complete")
        total = (await transfer_of(cluster.daemons["alice"], "bob", "out", transfer_id)).sent_bytes
        assert total - first_run == len(data) - kept
        status, (body, _) = await fetch(bob_ui, "alice", transfer_id)
        assert status == 200 and sha256(body) == sha256(data)
    finally:
        await proxy.close()

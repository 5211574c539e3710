"""Small files travel inside their offer (PROTOCOL.md §11.6): relays can hold them for an offline
recipient, while a larger file's bytes wait for sender and recipient to be online together."""

from __future__ import annotations

import json
import os
import time

from flame.config import Settings
from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.envelope import encode_inner, new_message_id, open_envelope, seal
from flame.core.models import INLINE_MAX_BYTES, SEQ_MAX, Envelope, FileOfferBody, Inner
from flame.daemon import Daemon
from flame.services.files.disk import remove_strays
from flame.store import files as file_store
from tests.cluster import Cluster, services_of
from tests.e2e.test_relays import bob_away, held, offline, until_state
from tests.files_helpers import (
    MIB,
    fetch,
    files_on_disk,
    random_bytes,
    send_file,
    sha256,
    transfer_of,
    wait_state,
)
from tests.social import online_for


async def state_of(node: Daemon, peer: str, direction: str, transfer_id: str) -> str | None:
    transfer = await file_store.get(services_of(node).ctx.db, peer, direction, transfer_id)
    return None if transfer is None else transfer.state


async def test_a_small_file_reaches_an_offline_recipient_through_relays_a_large_one_waits(
    cluster: Cluster,
) -> None:
    alice, feed = await bob_away(cluster)

    small = random_bytes(300 * 1024, seed=11)
    large = random_bytes(MIB + 1, seed=12)  # one byte over files.relay_max_bytes
    small_offer = await send_file(alice, "bob", "agenda.pdf", small)
    large_offer = await send_file(alice, "bob", "board pack.pdf", large)
    small_id = small_offer["file"]["transfer_id"]
    large_id = large_offer["file"]["transfer_id"]
    for offer in (small_offer, large_offer):  # both offers are envelopes: both are relayed
        await until_state(feed, offer["id"], "relayed")
    relays = [cluster.daemons[n] for n in ("carol", "dave")]
    assert [await held(r) for r in relays] == [2, 2]
    await cluster.stop_daemon("alice")  # from here on only the relays can bring anything

    bob_node = await cluster.start_daemon("bob")
    bob = await cluster.ui("bob")
    bob_feed = await bob.websocket()
    if await state_of(bob_node, "alice", "in", small_id) != "complete":
        await wait_state(bob_feed, small_id, "complete")
    status, (body, _) = await fetch(bob, "alice", small_id)
    assert status == 200 and sha256(body) == sha256(small)
    waiting = await transfer_of(bob_node, "alice", "in", large_id)
    assert (waiting.state, waiting.held_bytes) == ("receiving", 0)  # the offer came, no byte

    # The stored message is the offer without its bytes: the file is on disk once, not in SQLite.
    row = await services_of(bob_node).ctx.db.fetchone(
        "SELECT body FROM messages WHERE kind='file_offer' AND body LIKE ?", (f"%{small_id}%",)
    )
    assert row is not None and "data" not in json.loads(row["body"])
    listed = {m["file"]["transfer_id"]: m for m in await bob.messages("alice")}
    assert "data" not in json.dumps(listed[small_id])

    alice_node = await cluster.start_daemon("alice")
    alice = await cluster.ui("alice")
    if await state_of(bob_node, "alice", "in", large_id) != "complete":
        await wait_state(bob_feed, large_id, "complete", timeout=30)
    status, (body, _) = await fetch(bob, "alice", large_id)
    assert status == 200 and sha256(body) == sha256(large)

    # alice learns the small file arrived from bob's delivered receipt: nothing was streamed.
    sent = await transfer_of(alice_node, "bob", "out", small_id)
    if sent.state != "complete":
        feed = await alice.websocket()
        await wait_state(feed, small_id, "complete")
        sent = await transfer_of(alice_node, "bob", "out", small_id)
    assert sent.inline and sent.sent_bytes == 0
    assert not (await transfer_of(alice_node, "bob", "out", large_id)).inline


async def test_an_online_recipient_gets_a_small_file_in_one_envelope(trio: Cluster) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
    data = random_bytes(INLINE_MAX_BYTES, seed=13)  # the largest that travels inline
    offer = await send_file(alice, "bob", "minutes.docx", data)
    transfer_id = offer["file"]["transfer_id"]
    done = await wait_state(bob_feed, transfer_id, "complete")
    assert done["bytes"] == len(data)
    await wait_state(alice_feed, transfer_id, "complete")
    status, (body, _) = await fetch(bob, "alice", transfer_id)
    assert status == 200 and sha256(body) == sha256(data)
    received = await transfer_of(trio.daemons["bob"], "alice", "in", transfer_id)
    assert received.inline and received.state == "complete"
    # No progress of a stream was ever reported for it: it came whole.
    assert not [e for e in bob_feed.seen if e["type"] == "file_progress"]


async def test_a_small_file_cancelled_before_its_recipient_had_it_is_taken_back(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    await cluster.add_user("alice")
    await cluster.add_user("bob")
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    await offline(cluster, alice, feed, "bob")
    offer = await send_file(alice, "bob", "wrong draft.docx", b"not for your eyes")
    transfer_id = offer["file"]["transfer_id"]
    status, reply = await alice.post(f"/ui/api/conversations/bob/files/{transfer_id}/cancel", {})
    assert status == 200 and reply["file"]["state"] == "cancelled"

    bob_node = await cluster.start_daemon("bob")  # the offer arrives, then the cancel behind it
    bob = await cluster.ui("bob")
    bob_feed = await bob.websocket()
    if await state_of(bob_node, "alice", "in", transfer_id) != "cancelled":
        await wait_state(bob_feed, transfer_id, "cancelled")
    assert files_on_disk(bob_node) == []
    status, _ = await fetch(bob, "alice", transfer_id)
    assert status == 404
    (listed,) = await bob.messages("alice")
    assert listed["file"]["state"] == "cancelled"


def largest_inline_envelope(identity: Identity, recipient_key: bytes) -> Envelope:
    body = FileOfferBody(
        transfer_id=b64e(os.urandom(16)),
        name="x" * 251 + ".pdf",  # 255 bytes: the longest name in normal form
        size=INLINE_MAX_BYTES,
        media_type="application/" + "x" * 63,
        sha256=b64e(os.urandom(32)),
        key=b64e(os.urandom(32)),
        token=b64e(os.urandom(32)),
        chunk_bytes=4 * MIB,
        data=b64e(os.urandom(INLINE_MAX_BYTES)),
    )
    inner = Inner(
        from_="a" * 32,
        to="b" * 32,
        id=new_message_id(),
        seq=SEQ_MAX,
        ts=int(time.time() * 1000),
        kind="file_offer",
        body=body,
    )
    return seal(identity.exchange, "b" * 32, recipient_key, inner)


def test_the_largest_inline_offer_fits_the_envelope_and_body_limits() -> None:
    sender, recipient = Identity.generate(), Identity.generate()
    envelope = largest_inline_envelope(sender, recipient.x25519_key)
    encoded = envelope.model_dump_json()
    assert Envelope.model_validate_json(encoded) == envelope  # within the sealed-body limit
    assert len(encoded) < Settings().daemon.max_body_bytes // 2  # a request of one fits, twice


def test_the_largest_inline_offer_fits_under_version_2_too() -> None:
    """PROTOCOL.md §14.4: the ratchet ciphertext is encoded once more; it still fits a request."""
    sender, recipient = Identity.generate(), Identity.generate()
    v1 = largest_inline_envelope(sender, recipient.x25519_key)
    bob = ratchet.new_account()
    key = bytes(32)
    one_time, _ = ratchet.fresh_prekeys(bob, recipient, "b" * 32, 1)
    _, pickle = ratchet.outbound(ratchet.new_account(), key, one_time[0])
    inner = open_envelope(recipient.exchange, "b" * 32, v1).inner
    sealed = ratchet.encrypt(ratchet.session_from(pickle, key), key, "I" * 43, encode_inner(inner))
    outer = Inner(
        from_=inner.from_, to=inner.to, id=inner.id, seq=0, ts=0, kind="ratchet", body=sealed.body
    )
    envelope = seal(sender.exchange, "b" * 32, recipient.x25519_key, outer, version=2)
    encoded = envelope.model_dump_json()
    assert 2_400_000 < len(envelope.ct) < 2_600_000
    assert Envelope.model_validate_json(encoded) == envelope  # within the sealed-body limit
    assert len(encoded) + 200 < Settings().daemon.max_body_bytes  # a request of one fits


async def test_a_file_left_over_from_a_crash_is_removed_and_no_other(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    bob_node = trio.daemons["bob"]
    bob_feed = await (await trio.ui("bob")).websocket()
    offer = await send_file(alice, "bob", "kept.txt", b"kept")
    await wait_state(bob_feed, offer["file"]["transfer_id"], "complete")
    (kept,) = files_on_disk(bob_node)
    folder = kept.parent
    stray = folder / ("in-" + "0" * 32)  # written just before a crash, never committed
    fresh = folder / ("in-" + "1" * 32)  # being written right now
    other = folder / "notes.txt"  # not a name Flame makes: not Flame's to delete
    for path in (stray, fresh, other):
        path.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    os.utime(other, (old, old))
    bob_services = services_of(bob_node)
    known = await file_store.stored_names(bob_services.ctx.db)
    assert await remove_strays(bob_services.ctx.settings, known) == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted([kept.name, fresh.name, other.name])


async def test_a_caption_travels_with_its_file_under_both_versions_and_is_searched(
    cluster: Cluster,
) -> None:
    """PROTOCOL.md §11.2: bob speaks only version 1, carol version 2; each gets the caption with
    the file, as the message's text, and finds it by search. One too long is refused at once."""
    await cluster.start_directory()
    await cluster.add_user("alice")
    await cluster.add_user("bob", security__max_version=1)
    await cluster.add_user("carol")
    await online_for(cluster, "alice", "bob", "carol")
    alice = await cluster.ui("alice")
    for peer in ("bob", "carol"):
        ui = await cluster.ui(peer)
        feed = await ui.websocket()
        caption = f"For {peer}: the minutes we agreed"
        sent = await alice.send_file(peer, "minutes.txt", b"We agreed.", "text/plain", caption)
        assert (sent["kind"], sent["text"]) == ("file_offer", caption)
        event = await feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["kind"] == "file_offer"
        )
        assert event["message"]["text"] == caption
        assert event["message"]["file"]["name"] == "minutes.txt"
        found = await ui.get_json("/ui/api/search", {"q": "agreed"})
        assert [hit["message"]["id"] for hit in found["messages"]] == [event["message"]["id"]]
    status, refused = await alice.post(
        "/ui/api/conversations/bob/files",
        {"name": "a.txt", "size": 3, "type": "text/plain", "caption": "x" * 16_001},
    )
    assert (status, refused["error"]) == (413, "caption_too_long")
    count = await services_of(cluster.daemons["alice"]).ctx.db.fetchone(
        "SELECT count(*) FROM transfers WHERE name='a.txt'"
    )
    assert count is not None and count[0] == 0  # nothing of it was kept

"""A file streamed to the peer while its upload still arrives (PROTOCOL.md §11.4, "The hash
trailer"), with real daemons: the offer goes without its SHA-256 as soon as the first chunk is
stored, bob holds verified chunks while the browser is still sending (shown by §11.3's answer,
not by timing), and the hash sealed after the last chunk decides. An upload cut midway is
cancelled at both; a restart of the receiver mid-stream resumes; a peer whose daemon does not
advertise `files-stream` gets the hash-first offer of before."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from flame.core.encoding import b64e
from flame.core.hello import FEATURES
from flame.daemon import Daemon
from flame.errors import PeerRefused
from flame.store import contacts as contact_store
from flame.store import files as file_store
from tests.cluster import Cluster, UiClient, eventually, services_of
from tests.e2e.test_files_bad_input import CraftedOffer, put
from tests.e2e.test_peer_api import Peer
from tests.files_helpers import (
    MIB,
    announce,
    fetch,
    files_on_disk,
    random_bytes,
    send_file,
    sha256,
    transfer_of,
    wait_state,
)

TIMEOUT_S = 30.0


class HeldUpload:
    """The browser's upload of `data`, which sends `first` bytes and then waits for `go` (the
    user's disk or network is slow); `cut` ends it there, as a closed tab would."""

    def __init__(self, ui: UiClient, peer: str, transfer_id: str, data: bytes, first: int) -> None:
        self.go = asyncio.Event()
        self.cut = False
        self.task = asyncio.create_task(self._put(ui, peer, transfer_id, data, first))

    async def _body(self, data: bytes, first: int) -> AsyncIterator[bytes]:
        yield data[:first]
        await self.go.wait()
        if self.cut:
            raise ConnectionResetError("the browser went away")
        yield data[first:]

    async def _put(
        self, ui: UiClient, peer: str, transfer_id: str, data: bytes, first: int
    ) -> tuple[int, dict[str, Any]]:
        async with ui.session.put(
            f"/ui/api/conversations/{peer}/files/{transfer_id}/content",
            data=self._body(data, first),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        ) as response:
            return response.status, await response.json()


async def held_by_bob(alice: Daemon, transfer_id: str) -> tuple[str, int]:
    """What bob's daemon answers alice's §11.3 question: its state and verified, durable bytes."""
    services = services_of(alice)
    transfer = await file_store.get(services.ctx.db, "bob", "out", transfer_id)
    contact = await contact_store.get_contact(services.ctx.db, "bob")
    assert transfer is not None and contact is not None and contact.endpoint is not None
    status = await services.client.transfer_status(
        contact.endpoint, transfer_id, b64e(transfer.upload_token)
    )
    return status.state, status.received_bytes


async def holds_at_least(alice: Daemon, transfer_id: str, size: int) -> bool:
    try:
        state, held = await held_by_bob(alice, transfer_id)
    except PeerRefused as exc:  # the offer is not there yet
        assert exc.code == "unknown_transfer", exc
        return False
    return state == "receiving" and held >= size


async def upload_held_at_bob(
    trio: Cluster, ui: UiClient, name: str, data: bytes, held: int
) -> tuple[str, HeldUpload]:
    """Announce `data`, upload half of it, and wait until bob's daemon holds `held` bytes."""
    status, reply = await announce(ui, "bob", name, len(data))
    assert status == 201
    transfer_id = str(reply["file"]["transfer_id"])
    upload = HeldUpload(ui, "bob", transfer_id, data, first=len(data) // 2)
    alice = trio.daemons["alice"]
    await eventually(lambda: holds_at_least(alice, transfer_id, held), equals=True)
    return transfer_id, upload


async def test_bob_holds_verified_chunks_while_the_upload_still_arrives(trio: Cluster) -> None:
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    data = random_bytes(6 * MIB + 777, seed=21)
    status, reply = await announce(alice_ui, "bob", "board pack.pdf", len(data))
    assert status == 201
    transfer_id = reply["file"]["transfer_id"]
    upload = HeldUpload(alice_ui, "bob", transfer_id, data, first=3 * MIB)

    # Offered once its first chunk was stored, without its hash (absent, not null).
    offered = await bob_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["kind"] == "file_offer"
    )
    assert offered["message"]["file"]["size"] == len(data)
    received = await transfer_of(bob, "alice", "in", transfer_id)
    assert received.hash_last and received.sha256 is None and received.state == "receiving"
    # bob's daemon holds (verified, fsynced, recorded) what the browser sent so far, and it is
    # still receiving: nothing is shown before the hash that ends the stream.
    await eventually(lambda: holds_at_least(alice, transfer_id, 2 * MIB), equals=True)
    assert not upload.task.done()
    assert (await transfer_of(alice, "bob", "out", transfer_id)).sha256 is None  # not yet hashed
    status, _ = await fetch(bob_ui, "alice", transfer_id)
    assert status == 404

    upload.go.set()
    assert (await upload.task)[0] == 201
    await wait_state(bob_feed, transfer_id, "complete", timeout=TIMEOUT_S)
    await wait_state(alice_feed, transfer_id, "complete", timeout=TIMEOUT_S)
    status, (body, _) = await fetch(bob_ui, "alice", transfer_id)
    assert status == 200 and sha256(body) == sha256(data)
    sent = await transfer_of(alice, "bob", "out", transfer_id)
    assert sent.sent_bytes == len(data)  # every byte once: the stream followed the upload
    assert sent.sha256 is not None and sent.hash_last


async def test_an_upload_cut_midway_is_cancelled_at_both_daemons(trio: Cluster) -> None:
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    data = random_bytes(6 * MIB, seed=22)
    transfer_id, upload = await upload_held_at_bob(trio, alice_ui, "minutes.docx", data, MIB)

    upload.cut = True
    upload.go.set()
    await asyncio.gather(upload.task, return_exceptions=True)  # the browser's side just ends
    failed = await wait_state(alice_feed, transfer_id, "failed", timeout=TIMEOUT_S)
    assert "interrupted" in failed["error"]
    await wait_state(bob_feed, transfer_id, "cancelled", timeout=TIMEOUT_S)
    assert files_on_disk(alice) == [] and files_on_disk(bob) == []
    assert (await transfer_of(bob, "alice", "in", transfer_id)).state == "cancelled"
    # Nothing else is lost: the conversation goes on, and the next file arrives.
    offer = await send_file(alice_ui, "bob", "minutes v2.docx", data)
    await wait_state(bob_feed, offer["file"]["transfer_id"], "complete", timeout=TIMEOUT_S)


async def test_a_file_declined_while_its_upload_arrives_answers_the_upload_with_why(
    trio: Cluster,
) -> None:
    """bob declines while alice's browser still sends: the rest of the upload is refused with
    the reason the transfer closed with, not a word that hides it, and nothing stays on disk."""
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    alice_feed = await alice_ui.websocket()
    data = random_bytes(6 * MIB, seed=23)
    transfer_id, upload = await upload_held_at_bob(trio, alice_ui, "draft budget.xlsx", data, MIB)

    status, reply = await bob_ui.post(
        f"/ui/api/conversations/alice/files/{transfer_id}/decline", {}
    )
    assert status == 200 and reply["file"]["state"] == "declined"
    declined = await wait_state(alice_feed, transfer_id, "declined", timeout=TIMEOUT_S)
    assert declined["error"] == "bob declined it."
    upload.go.set()
    status, answer = await upload.task
    assert status == 409
    assert answer["error"] == "transfer_closed" and answer["message"] == "bob declined it."
    assert (await transfer_of(alice, "bob", "out", transfer_id)).state == "declined"

    async def on_disk() -> list[object]:
        return [*files_on_disk(alice), *files_on_disk(bob)]

    await eventually(on_disk, equals=[])


async def test_a_receiver_restarted_mid_stream_resumes_from_what_it_kept(trio: Cluster) -> None:
    alice_ui = await trio.ui("alice")
    alice = trio.daemons["alice"]
    alice_feed = await alice_ui.websocket()
    data = random_bytes(6 * MIB, seed=23)
    transfer_id, upload = await upload_held_at_bob(trio, alice_ui, "q3.xlsx", data, 2 * MIB)

    settings = trio.daemons["bob"].settings
    await trio.stop_daemon("bob")  # while alice's browser is still uploading
    await wait_state(alice_feed, transfer_id, "waiting", timeout=TIMEOUT_S)
    first_run = (await transfer_of(alice, "bob", "out", transfer_id)).sent_bytes
    bob = await trio.start_daemon("bob", settings=settings)
    bob_feed = await (await trio.ui("bob")).websocket()
    upload.go.set()
    assert (await upload.task)[0] == 201
    await wait_state(bob_feed, transfer_id, "complete", timeout=TIMEOUT_S)
    kept = 2 * MIB  # at least: bob's verified prefix before he stopped
    total = (await transfer_of(alice, "bob", "out", transfer_id)).sent_bytes
    assert total <= first_run + len(data) - kept  # resumed, not sent again from the start
    status, (body, _) = await fetch(await trio.ui("bob"), "alice", transfer_id)
    assert status == 200 and sha256(body) == sha256(data)
    assert (await transfer_of(bob, "alice", "in", transfer_id)).held_bytes == len(data)


async def test_a_peer_without_files_stream_gets_the_hash_first_offer(trio: Cluster) -> None:
    bob = trio.daemons["bob"]
    assert bob.holder is not None
    bob.holder.features = tuple(f for f in FEATURES if f != "files-stream")  # an earlier version
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    bob_feed = await bob_ui.websocket()
    data = random_bytes(3 * MIB + 5, seed=24)
    offer = await send_file(alice_ui, "bob", "budget.pdf", data)
    transfer_id = offer["file"]["transfer_id"]
    await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["id"] == offer["id"])
    received = await transfer_of(bob, "alice", "in", transfer_id)
    assert not received.hash_last and received.sha256 is not None  # the hash was in the offer
    await wait_state(bob_feed, transfer_id, "complete", timeout=TIMEOUT_S)
    sent = await transfer_of(trio.daemons["alice"], "bob", "out", transfer_id)
    assert not sent.hash_last
    status, (body, _) = await fetch(bob_ui, "alice", transfer_id)
    assert status == 200 and sha256(body) == sha256(data)


async def test_the_hash_trailer_is_checked_and_a_wrong_or_missing_one_completes_nothing(
    trio: Cluster,
) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    peer, bob_ui = Peer(alice, bob), await trio.ui("bob")
    offer = CraftedOffer(sha256=None)  # streamed: its hash trails its chunks
    assert "sha256" not in offer.body.model_dump()  # absent, never null
    status, _ = await peer.post([offer.envelope(alice, bob)])
    assert status == 200
    count = offer.layout.count
    chunks = b"".join(offer.sealed(i) for i in range(count))
    digest = hashlib.sha256(offer.data).digest()

    async def state_and_held() -> tuple[str, int]:
        transfer = await transfer_of(bob, "alice", "in", offer.transfer_id)
        return transfer.state, transfer.held_bytes

    # Every chunk but no trailer: refused before a byte is read.
    status, reply = await put(alice, bob, offer, 0, chunks)
    assert (status, reply["error"]) == (400, "missing_trailer")
    # The hash sealed under a chunk's label (as chunk `count`) does not open as the trailer: the
    # chunks are kept, the file is not complete.
    forged = offer.cipher.seal(count, digest)
    status, reply = await put(alice, bob, offer, 0, chunks + forged)
    assert (status, reply["error"]) == (400, "bad_chunk")
    assert reply["received_bytes"] == len(offer.data)
    assert await state_and_held() == ("receiving", len(offer.data))
    assert (await fetch(bob_ui, "alice", offer.transfer_id))[0] == 404
    # A trailer that opens but names another hash: the file fails and its bytes go.
    wrong = offer.cipher.seal_trailer(count, hashlib.sha256(b"another file").digest())
    status, reply = await put(alice, bob, offer, count, wrong)
    assert (status, reply["error"]) == (422, "hash_mismatch")
    assert (await state_and_held())[0] == "failed"
    assert files_on_disk(bob) == []

    # The right trailer after the last chunk: complete.
    good = CraftedOffer(sha256=None)
    status, _ = await peer.post([good.envelope(alice, bob, seq=2)])
    assert status == 200
    body = b"".join(good.sealed(i) for i in range(count))
    status, reply = await put(alice, bob, good, 0, body + good.cipher.seal_trailer(count, digest))
    assert (status, reply["state"]) == (200, "complete")
    status, (content, _) = await fetch(bob_ui, "alice", good.transfer_id)
    assert status == 200 and content == good.data
    # A hash-first offer takes no trailer: one past its chunks runs past the end.
    first = CraftedOffer()
    status, _ = await peer.post([first.envelope(alice, bob, seq=3)])
    assert status == 200
    body = b"".join(first.sealed(i) for i in range(count))
    status, reply = await put(alice, bob, first, 0, body + first.cipher.seal_trailer(count, digest))
    assert (status, reply["error"]) == (400, "past_end")


async def test_the_senders_daemon_restarted_mid_upload_takes_the_file_back(trio: Cluster) -> None:
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    bob_feed = await bob_ui.websocket()
    data = random_bytes(6 * MIB, seed=25)
    transfer_id, upload = await upload_held_at_bob(trio, alice_ui, "forecast.xlsx", data, MIB)

    settings = alice.settings
    await trio.stop_daemon("alice")  # the upload dies with it: it cannot resume
    upload.go.set()
    await asyncio.gather(upload.task, return_exceptions=True)
    alice = await trio.start_daemon("alice", settings=settings)
    await wait_state(bob_feed, transfer_id, "cancelled", timeout=TIMEOUT_S)
    assert (await transfer_of(alice, "bob", "out", transfer_id)).state == "failed"
    assert files_on_disk(alice) == [] and files_on_disk(bob) == []

"""Files under bad input (issue 3, "Bad input"): a chunk with a wrong tag or index, data past the
declared size, a wrong upload token, an offer from a blocked user, unsafe names, a size over the
limit. Each is refused with a reason, leaves nothing visible as complete, and writes nothing
outside the data folder. Requests are built and signed by hand, as a hostile peer would."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import strategies as st

from flame.core.encoding import b64e
from flame.core.envelope import new_message_id, seal
from flame.core.files import ChunkCipher, Layout
from flame.core.models import INLINE_MAX_BYTES, Envelope, FileOfferBody, Inner
from flame.core.signing import sign_request
from flame.daemon import Daemon
from flame.store import files as file_store
from flame.store import messages as message_store
from tests.cluster import Cluster, services_of
from tests.e2e.test_hostile_input import check, samples
from tests.e2e.test_peer_api import Peer
from tests.files_helpers import (
    announce,
    fetch,
    put_content,
    random_bytes,
    send_file,
    wait_state,
)

CHUNK = 64 * 1024
DATA = random_bytes(3 * CHUNK + 1000, seed=5)


class CraftedOffer:
    """An offer built by the test in alice's name, so it knows the key and the token."""

    def __init__(self, data: bytes = DATA, **changes: Any) -> None:
        self.data = data
        self.transfer_id_bytes = os.urandom(16)
        self.key, self.token = os.urandom(32), os.urandom(32)
        fields: dict[str, Any] = {
            "transfer_id": b64e(self.transfer_id_bytes),
            "name": "q3.xlsx",
            "size": len(data),
            "media_type": "application/vnd.ms-excel",
            "sha256": b64e(hashlib.sha256(data).digest()),
            "key": b64e(self.key),
            "token": b64e(self.token),
            "chunk_bytes": CHUNK,
        }
        fields.update(changes)
        self.body = FileOfferBody.model_validate(fields)
        self.cipher = ChunkCipher(self.key, self.transfer_id_bytes)
        self.layout = Layout(len(data), CHUNK)

    @property
    def transfer_id(self) -> str:
        return self.body.transfer_id

    def sealed(self, index: int) -> bytes:
        start = self.layout.offset(index)
        return self.cipher.seal(index, self.data[start : start + self.layout.plain_len(index)])

    def envelope(self, sender: Daemon, to: Daemon, seq: int = 1) -> Envelope:
        s, r = services_of(sender).ctx, services_of(to).ctx
        inner = Inner(
            from_=s.me,
            to=r.me,
            id=new_message_id(),
            seq=seq,
            ts=int(time.time() * 1000),
            kind="file_offer",
            body=self.body,
        )
        return seal(s.keys.identity().exchange, r.me, r.keys.account.x25519_key, inner)


async def signed(
    sender: Daemon,
    target: Daemon,
    method: str,
    path: str,
    body: bytes | AsyncIterator[bytes] = b"",
    *,
    token: str | None,
    unsigned_body: bool = True,
    length: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """A signed request from `sender` to `target`'s peer port, with the upload token."""
    s = services_of(sender).ctx
    host = f"127.0.0.1:{target.peer_port}"
    raw = body if isinstance(body, bytes) else b""
    headers = sign_request(
        s.keys.identity(),
        s.me,
        services_of(target).ctx.me,
        method,
        path,
        host,
        raw,
        int(time.time()),
        unsigned_body=unsigned_body and method == "PUT",
    )
    headers["Content-Type"] = "application/octet-stream"
    if token is not None:
        headers["Flame-Upload-Token"] = token
    if length is not None:
        headers["Content-Length"] = str(length)
    data: Any = io.BytesIO(body) if isinstance(body, bytes) and body else body or None
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, f"http://{host}{path}", data=data, headers=headers
        ) as response:
            return response.status, await response.json()


async def put(
    sender: Daemon, target: Daemon, offer: CraftedOffer, start: int, body: bytes, **kw: Any
) -> tuple[int, dict[str, Any]]:
    path = f"/api/v1/files/{offer.transfer_id}/chunks?start={start}"
    kw.setdefault("token", b64e(offer.token))
    kw.setdefault("length", len(body))
    return await signed(sender, target, "PUT", path, body, **kw)


async def stored_nothing(node: Daemon) -> None:
    db = services_of(node).ctx.db
    assert await message_store.count_messages(db) == 0
    assert await db.fetchall("SELECT * FROM transfers") == []


def data_folder_files(node: Daemon) -> set[str]:
    folder = services_of(node).ctx.settings.daemon_data_dir()
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


async def test_unsafe_names_and_oversized_offers_are_refused_and_nothing_is_stored(
    trio: Cluster,
) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    peer = Peer(alice, bob)
    cases = {
        "../../etc/passwd": "bad_file_name",
        "con.txt\u202e": "bad_file_name",
        "a/b.txt": "bad_file_name",
        "nul\x00.txt": "bad_file_name",
        "": "bad_file_name",
    }
    for name, code in cases.items():
        status, reply = await peer.post([CraftedOffer(name=name).envelope(alice, bob)])
        assert (status, reply["error"]) == (400, code), name
        assert reply["results"][0]["status"] == "rejected" and reply["message"]
    limit = services_of(bob).ctx.settings.files.max_file_bytes
    status, reply = await peer.post([CraftedOffer(size=limit + 1).envelope(alice, bob)])
    assert (status, reply["error"]) == (400, "file_too_large")
    status, reply = await peer.post([CraftedOffer(chunk_bytes=1024).envelope(alice, bob)])
    assert (status, reply["error"]) == (400, "bad_chunk_size")
    await stored_nothing(bob)
    assert not (services_of(bob).ctx.settings.daemon_data_dir() / "files").exists()

    # The same id twice from one author: the second is refused, the first stays.
    first = CraftedOffer()
    status, _ = await peer.post([first.envelope(alice, bob)])
    assert status == 200
    again = CraftedOffer(transfer_id=first.transfer_id)
    status, reply = await peer.post([again.envelope(alice, bob, seq=2)])
    assert (status, reply["error"]) == (400, "duplicate_transfer")
    assert await message_store.count_messages(services_of(bob).ctx.db) == 1


async def test_inline_content_that_is_not_what_its_offer_says_is_refused(trio: Cluster) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    peer = Peer(alice, bob)
    content = b"quarterly figures"
    big = random_bytes(INLINE_MAX_BYTES + 1, seed=9)
    cases = [
        (content, b64e(content + b"!"), "bad_envelope"),  # more bytes than the offer's size
        (content, b64e(b"Quarterly figures"), "hash_mismatch"),  # the size, not the bytes
        (content, "cXVhcnRlcmx5IGZpZ3VyZXM=", "bad_envelope"),  # padded: not canonical
        (big, b64e(big), "bad_envelope"),  # over 1 MiB never travels inline
    ]
    for real, inline, code in cases:
        offer = CraftedOffer(real)
        offer.body = offer.body.model_copy(update={"data": inline})
        status, reply = await peer.post([offer.envelope(alice, bob)])
        assert (status, reply["error"]) == (400, code), code
    await stored_nothing(bob)
    assert not (services_of(bob).ctx.settings.daemon_data_dir() / "files").exists()


async def test_the_chunk_endpoint_refuses_bad_chunks_tokens_offsets_and_sizes(
    trio: Cluster,
) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    bob_ui = await trio.ui("bob")
    offer = CraftedOffer()
    status, _ = await Peer(alice, bob).post([offer.envelope(alice, bob)])
    assert status == 200
    good0, good1 = offer.sealed(0), offer.sealed(1)

    refusals = [
        (await put(alice, bob, offer, 0, good0, token=b64e(os.urandom(32))), 403, "bad_token"),
        (await put(alice, bob, offer, 0, good0, token=None), 403, "bad_token"),
        (await put(alice, bob, offer, 1, good1), 409, "wrong_offset"),
        (await put(alice, bob, offer, 0, good0 + b"x" * 10**6), 400, "past_end"),
        (await put(alice, bob, offer, 0, good0[:-5]), 400, "bad_request"),
        (await put(alice, bob, offer, 0, good0, unsigned_body=False), 401, "bad_signature"),
        (await put(alice, bob, offer, 0, good1), 400, "bad_chunk"),  # chunk 1 in chunk 0's place
        (await put(trio.daemons["carol"], bob, offer, 0, good0), 404, "unknown_transfer"),
    ]
    for (status, reply), want_status, want_code in refusals:
        assert (status, reply["error"]) == (want_status, want_code), reply
        assert reply["message"]
    status, reply = await signed(
        alice, bob, "PUT", f"/api/v1/files/{offer.transfer_id}/chunks?start=x", good0,
        token=b64e(offer.token), length=len(good0),
    )  # fmt: skip
    assert (status, reply["error"]) == (400, "bad_request")

    async def stream() -> AsyncIterator[bytes]:
        yield good0

    status, reply = await signed(
        alice, bob, "PUT", f"/api/v1/files/{offer.transfer_id}/chunks?start=0", stream(),
        token=b64e(offer.token),
    )  # fmt: skip
    assert (status, reply["error"]) == (411, "length_required")

    # A damaged second chunk: the first is kept, the second refused.
    damaged = bytearray(good1)
    damaged[100] ^= 0x04
    status, reply = await put(alice, bob, offer, 0, good0 + bytes(damaged))
    assert (status, reply["error"], reply["received_bytes"]) == (400, "bad_chunk", CHUNK)
    status, reply = await signed(
        alice, bob, "GET", f"/api/v1/files/{offer.transfer_id}", token=b64e(offer.token)
    )
    assert status == 200 and reply == {
        "transfer_id": offer.transfer_id,
        "state": "receiving",
        "received_bytes": CHUNK,
        "size": len(DATA),
    }
    # Nothing of it is visible as a file yet.
    status, body = await fetch(bob_ui, "alice", offer.transfer_id)
    assert status == 404 and json.loads(body[0])["error"] == "file_not_ready"

    rest = b"".join(offer.sealed(i) for i in range(1, offer.layout.count))
    status, reply = await put(alice, bob, offer, 1, rest)
    assert status == 200 and reply["state"] == "complete"
    status, (body, _) = await fetch(bob_ui, "alice", offer.transfer_id)
    assert status == 200 and body == DATA
    status, reply = await put(alice, bob, offer, 0, good0)
    assert (status, reply["error"], reply["state"]) == (410, "transfer_closed", "complete")

    # Every byte stayed in bob's data folder, under a generated name.
    transfer = await file_store.get(services_of(bob).ctx.db, "alice", "in", offer.transfer_id)
    assert transfer is not None
    files = data_folder_files(bob)
    assert f"files/{transfer.stored_name}" in files
    assert {f for f in files if f.startswith("files/")} == {f"files/{transfer.stored_name}"}


async def test_a_file_whose_hash_does_not_match_the_offer_is_discarded(trio: Cluster) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    bob_ui = await trio.ui("bob")
    feed = await bob_ui.websocket()
    offer = CraftedOffer(sha256=b64e(hashlib.sha256(b"something else").digest()))
    status, _ = await Peer(alice, bob).post([offer.envelope(alice, bob)])
    assert status == 200
    everything = b"".join(offer.sealed(i) for i in range(offer.layout.count))
    status, reply = await put(alice, bob, offer, 0, everything)
    assert (status, reply["error"]) == (422, "hash_mismatch")
    failed = await wait_state(feed, offer.transfer_id, "failed")
    assert "SHA-256" in failed["error"]
    status, _ = await fetch(bob_ui, "alice", offer.transfer_id)
    assert status == 404
    assert not [f for f in data_folder_files(bob) if f.startswith("files/")]


async def test_a_blocked_sender_is_refused_offers_and_chunks_until_unblocked(
    trio: Cluster,
) -> None:
    alice, bob, carol = trio.daemons["alice"], trio.daemons["bob"], trio.daemons["carol"]
    await services_of(bob).blocks.block("carol")
    offer = CraftedOffer()
    status, reply = await Peer(carol, bob).post([offer.envelope(carol, bob)])
    assert (status, reply["error"]) == (403, "forbidden")
    assert "carol" not in reply["message"]  # the blocked user is not told why
    status, reply = await put(carol, bob, offer, 0, offer.sealed(0))
    assert (status, reply["error"]) == (403, "forbidden")
    await stored_nothing(bob)

    # Through carol's own UI: her offer is refused at bob's door and stays queued on her side,
    # as a message to someone away would (PROTOCOL.md §12.4); bob stores nothing.
    carol_ui = await trio.ui("carol")
    sent = await send_file(carol_ui, "bob", "hello.txt", b"hello bob")
    await services_of(carol).delivery.deliver_to_peer("bob")
    row = await services_of(carol).ctx.db.fetchone(
        "SELECT attempts, last_error FROM outbox WHERE message_id=?", (sent["id"],)
    )
    assert row is not None and row["attempts"] >= 1 and "refused" in row["last_error"]
    await stored_nothing(bob)

    await services_of(bob).blocks.unblock("carol")
    bob_ui = await trio.ui("bob")
    bob_feed = await bob_ui.websocket()
    sent = await send_file(carol_ui, "bob", "hello again.txt", b"hello again")
    await wait_state(bob_feed, sent["file"]["transfer_id"], "complete")
    assert alice  # untouched


async def test_the_ui_refuses_bad_uploads_before_storing_anything(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    bob_ui = await trio.ui("bob")
    bob_feed = await bob_ui.websocket()
    limit = services_of(trio.daemons["alice"]).ctx.settings.files.max_file_bytes
    for size, status_code, code in ((limit + 1, 413, "file_too_large"), (0, 400, "empty_file")):
        status, reply = await announce(alice, "bob", "x.bin", size)
        assert (status, reply["error"]) == (status_code, code)
    status, reply = await announce(alice, "nobody", "x.bin", 10)
    assert (status, reply["error"]) == (404, "unknown_recipient")

    status, reply = await announce(alice, "bob", "../../etc/passwd", 11)
    assert status == 201 and reply["file"]["name"] == "passwd"
    transfer_id = reply["file"]["transfer_id"]
    status, reply = await put_content(alice, "bob", transfer_id, b"0123456789")  # one short
    assert (status, reply["error"]) == (400, "size_mismatch")
    async with alice.session.put(
        f"/ui/api/conversations/bob/files/{transfer_id}/content",
        data=b"hello world",
        headers={"Content-Type": "text/plain"},
    ) as response:
        assert response.status == 415
    async with aiohttp.ClientSession() as stranger:  # no session cookie, no Origin
        async with stranger.put(
            f"{alice.url}/ui/api/conversations/bob/files/{transfer_id}/content",
            data=b"hello world",
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            assert response.status == 403
    status, reply = await put_content(alice, "bob", transfer_id, b"hello world")
    assert status == 201 and reply["file"]["name"] == "passwd"
    done = await wait_state(bob_feed, transfer_id, "complete")
    assert done["name"] == "passwd"
    status, reply = await put_content(alice, "bob", transfer_id, b"hello world")
    assert status == 409
    for node in ("alice", "bob"):
        stored = [f for f in data_folder_files(trio.daemons[node]) if f.startswith("files/")]
        assert len(stored) == 1 and "passwd" not in stored[0], stored
    assert not any(p.name == "passwd" for p in Path(trio.root).rglob("*"))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


async def test_the_file_routes_never_answer_500(trio: Cluster) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    alice_ui = await trio.ui("alice")
    offer = CraftedOffer()
    await Peer(alice, bob).post([offer.envelope(alice, bob)])
    inputs = st.tuples(
        st.binary(max_size=200),
        st.text(max_size=30),
        st.sampled_from([offer.transfer_id, "", "x" * 100, "%2e%2e", "AAAA"]),
        st.one_of(st.none(), st.text(alphabet="abcXYZ-_0123456789=", max_size=50)),
    )
    for body, start, transfer_id, token in samples(inputs, 40):
        quoted = urllib.parse.quote(transfer_id, safe="%") or "x"
        query = urllib.parse.urlencode({"start": start})
        status, reply = await signed(
            alice, bob, "PUT", f"/api/v1/files/{quoted}/chunks?{query}", body,
            token=token, length=len(body),
        )  # fmt: skip
        assert 400 <= status < 500 and reply["error"] and reply["message"], (status, reply)
        status, reply = await signed(alice, bob, "GET", f"/api/v1/files/{quoted}", token=token)
        assert 400 <= status < 500 or status == 200, (status, reply)
    async with aiohttp.ClientSession() as session:
        for raw in samples(st.binary(max_size=100), 10):
            async with session.put(
                f"http://127.0.0.1:{bob.peer_port}/api/v1/files/{offer.transfer_id}/chunks?start=0",
                data=raw,
            ) as response:
                check(response.status, await response.read())

    for payload, name, transfer_id in samples(
        st.tuples(JSONISH, st.text(max_size=12), st.text(max_size=30)), 40
    ):
        peer = urllib.parse.quote(name, safe="") or "x"
        file_id = urllib.parse.quote(transfer_id, safe="") or "x"
        base = f"/ui/api/conversations/{peer}/files"
        for path in (base, f"{base}/{file_id}/cancel", f"{base}/{file_id}/decline"):
            async with alice_ui.session.post(
                path, data=json.dumps(payload), headers={"Content-Type": "application/json"}
            ) as response:
                assert response.status < 500, (path, await response.text())
        for path in (f"{base}/{file_id}", f"{base}/{file_id}/content"):
            async with alice_ui.session.get(path) as response:
                assert response.status < 500, (path, await response.text())
        async with alice_ui.session.put(
            f"{base}/{file_id}/content",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            assert response.status < 500, await response.text()
    status, _ = await alice_ui.get("/ui/api/me")
    assert status == 200

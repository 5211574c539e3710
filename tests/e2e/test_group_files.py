"""Files sent to groups end to end with real daemons (PROTOCOL.md §19.7): a group of four, one
member offline during part of it, exchanges a streamed file and an inline one; members serve
chunks to each other (the author uploads the file about once); a removed member's and a
non-member's chunk requests are refused; cancel; the bad-input rules of the chunk route."""

from __future__ import annotations

import hashlib
import json
import os
import time
from functools import partial
from typing import Any

import aiohttp

from flame.core.encoding import b64e
from flame.core.envelope import new_message_id
from flame.core.models import FileOfferBody, GroupFileBody
from flame.core.signing import sign_request
from flame.daemon import Daemon
from flame.store import files as file_store
from flame.store.files import Transfer
from tests.cluster import Cluster, eventually, identity_of, peer_tls, peer_url, services_of
from tests.e2e.test_groups import groups_of, membership
from tests.e2e.test_groups_refused import held, refused, sealed
from tests.e2e.test_peer_api import Peer
from tests.files_helpers import random_bytes

TIMEOUT_S = 30.0
CHUNK = 64 * 1024


async def start(cluster: Cluster, *names: str) -> dict[str, Daemon]:
    await cluster.start_directory()
    for name in names:
        await cluster.add_user(name, files__chunk_bytes=CHUNK)
    return dict(cluster.daemons)


async def group_of(cluster: Cluster, author: str, others: list[str]) -> str:
    node = cluster.daemons[author]
    gid = (await services_of(node).groups.create("Deal", others, None)).id
    want = await membership(node, gid)
    for other in others:
        if other in cluster.daemons:
            await eventually(partial(membership, cluster.daemons[other], gid), equals=want)
    return gid


async def transfer(node: Daemon, peer: str, direction: str, transfer_id: str) -> Transfer | None:
    return await file_store.get(services_of(node).ctx.db, peer, direction, transfer_id)


async def served(node: Daemon, peer: str, direction: str, tid: str, at_least: int) -> bool:
    found = await transfer(node, peer, direction, tid)
    return found is not None and found.sent_bytes >= at_least


async def state_of(node: Daemon, author: str, transfer_id: str) -> str | None:
    found = await transfer(node, author, "in", transfer_id)
    return None if found is None else found.state


async def content(cluster: Cluster, name: str, gid: str, author: str, tid: str) -> bytes:
    ui = await cluster.ui(name)
    async with ui.session.get(f"/ui/api/groups/{gid}/files/{author}/{tid}/content") as r:
        assert r.status == 200, await r.text()
        return await r.read()


async def test_a_group_of_four_exchanges_a_file_with_one_member_offline(
    cluster: Cluster,
) -> None:
    nodes = await start(cluster, "alice", "bob", "carol", "dave")
    gid = await group_of(cluster, "alice", ["bob", "carol", "dave"])
    await cluster.stop_daemon("dave")
    data = random_bytes(40 * CHUNK + 123, seed=7)
    ui = await cluster.ui("alice")
    sent = await ui.send_group_file(gid, "plan.bin", data, caption="The plan")
    tid = sent["file"]["transfer_id"]
    assert sent["text"] == "The plan" and sent["recipients"] == 3
    assert sent["file"]["state"] == "complete"  # the author's copy: whole, served to members
    for name in ("bob", "carol"):
        await eventually(
            partial(state_of, nodes[name], "alice", tid), equals="complete", timeout=TIMEOUT_S
        )
        assert await content(cluster, name, gid, "alice", tid) == data
    dave = await cluster.start_daemon("dave")  # back: the offer comes, carol serves the chunks
    await eventually(lambda: state_of(dave, "alice", tid), equals="complete", timeout=TIMEOUT_S)
    assert await content(cluster, "dave", gid, "alice", tid) == data
    # Each member asks the recipient before it first (bob < carol < dave), then the author:
    # dave came last and took everything from carol; the author served about one copy.
    # (What a holder served is counted when each answer ends, just after the last chunk.)
    await eventually(lambda: served(nodes["carol"], "alice", "in", tid, len(data)), equals=True)
    await eventually(lambda: served(nodes["alice"], "alice", "out", tid, len(data)), equals=True)
    own = await transfer(nodes["alice"], "alice", "out", tid)
    carol_copy = await transfer(nodes["carol"], "alice", "in", tid)
    assert own is not None and carol_copy is not None
    assert carol_copy.sent_bytes == len(data)
    assert own.sent_bytes <= 2 * len(data)
    # Every member's copy of the offer was delivered, and the group message lists the file.
    _, page = await ui.get(f"/ui/api/groups/{gid}/messages")
    (message,) = page["messages"]
    assert message["file"]["transfer_id"] == tid and message["file"]["name"] == "plan.bin"
    await eventually(lambda: _delivered(ui, gid), equals=3, timeout=TIMEOUT_S)


async def _delivered(ui: Any, gid: str) -> int:
    _, page = await ui.get(f"/ui/api/groups/{gid}/messages")
    return int(page["messages"][0]["delivered"])


async def test_an_inline_group_file_and_a_cancel(cluster: Cluster) -> None:
    nodes = await start(cluster, "alice", "bob", "carol")
    gid = await group_of(cluster, "alice", ["bob", "carol"])
    ui = await cluster.ui("alice")
    small = b"minutes of the board\n" * 100
    tid = (await ui.send_group_file(gid, "minutes.txt", small))["file"]["transfer_id"]
    for name in ("bob", "carol"):
        await eventually(
            partial(state_of, nodes[name], "alice", tid), equals="complete", timeout=TIMEOUT_S
        )
        found = await transfer(nodes[name], "alice", "in", tid)
        assert found is not None and found.inline
        assert await content(cluster, name, gid, "alice", tid) == small
    # The author takes it back: every member is told and deletes it.
    status, reply = await ui.post(f"/ui/api/groups/{gid}/files/{tid}/cancel", {})
    assert status == 200 and reply["file"]["state"] == "cancelled", reply
    for name in ("bob", "carol"):
        await eventually(
            partial(state_of, nodes[name], "alice", tid), equals="cancelled", timeout=TIMEOUT_S
        )
    status, reply = await ui.post(f"/ui/api/groups/{gid}/files/{tid}/cancel", {})
    assert (status, reply["error"]) == (409, "transfer_closed")


async def ask_chunks(
    asker: Daemon, holder: Daemon, author: str, tid: str, token: bytes | None, start: str = "0"
) -> tuple[int, Any]:
    """A chunk request signed by `asker`, as its daemon would send it (PROTOCOL.md §19.7)."""
    path = f"/api/v1/group-files/{author}/{tid}/chunks?start={start}"
    me, to = services_of(asker).ctx.me, services_of(holder).ctx.me
    host = peer_url(holder).split("://", 1)[1]
    headers = sign_request(identity_of(asker), me, to, "GET", path, host, b"", int(time.time()))
    if token is not None:
        headers["Flame-Upload-Token"] = b64e(token)
    async with aiohttp.ClientSession() as session:
        async with session.get(peer_url(holder) + path, headers=headers, ssl=peer_tls(holder)) as r:
            body = await r.read()
            if r.headers.get("Content-Type", "").startswith("application/json"):
                return r.status, json.loads(body)
            return r.status, body


async def test_removed_and_non_members_cannot_fetch_chunks(cluster: Cluster) -> None:
    nodes = await start(cluster, "alice", "bob", "carol", "eve")
    alice, bob, carol, eve = (nodes[n] for n in ("alice", "bob", "carol", "eve"))
    gid = await group_of(cluster, "alice", ["bob", "carol"])
    await services_of(alice).groups.change(gid, "remove", ["carol"])
    await eventually(lambda: membership(bob, gid), equals=await membership(alice, gid))
    ui = await cluster.ui("alice")
    data = random_bytes(5 * CHUNK, seed=3)
    tid = (await ui.send_group_file(gid, "after.bin", data))["file"]["transfer_id"]
    await eventually(lambda: state_of(bob, "alice", tid), equals="complete", timeout=TIMEOUT_S)
    token = (await transfer(alice, "alice", "out", tid)).upload_token  # type: ignore[union-attr]
    assert await transfer(carol, "alice", "in", tid) is None  # no offer after the removal
    for asker in (carol, eve):  # removed, and never a member: even with the token
        for holder in (alice, bob):
            status, reply = await ask_chunks(asker, holder, "alice", tid, token)
            assert (status, reply["error"]) == (403, "not_member"), reply
    # A member: the wrong token, an unknown file, a bad start, past the end, then the chunks.
    status, reply = await ask_chunks(bob, alice, "alice", tid, b"\x00" * 32)
    assert (status, reply["error"]) == (403, "bad_token")
    status, reply = await ask_chunks(bob, alice, "alice", "A" * 22, token)
    assert (status, reply["error"]) == (404, "unknown_transfer")
    status, reply = await ask_chunks(bob, alice, "alice", "not-an-id", token)
    assert (status, reply["error"]) == (404, "unknown_transfer")
    status, reply = await ask_chunks(bob, alice, "alice", tid, token, start="x")
    assert (status, reply["error"]) == (400, "bad_request")
    status, reply = await ask_chunks(bob, alice, "alice", tid, token, start="5")
    assert (status, reply["error"]) == (400, "past_end")
    status, body = await ask_chunks(bob, alice, "alice", tid, token, start="4")
    assert status == 200 and len(body) == CHUNK + 16
    own = await transfer(alice, "alice", "out", tid)
    assert own is not None and hashlib.sha256(data).digest() == own.sha256


async def test_bad_group_files_are_refused_with_their_reason_and_nothing_stored(
    trio: Cluster,
) -> None:
    """A non-member's file, one sent to a membership the receiver was not in, a malformed offer,
    a bad name, an inline file whose bytes are not its hash, a transfer id used twice: each a
    4xx with its reason, and nothing stored (PROTOCOL.md §19.7)."""
    alice, bob, carol = (trio.daemons[n] for n in ("alice", "bob", "carol"))
    group = await groups_of(alice).create("Board", ["bob"], None)
    gid, heads = group.id, list(group.heads)
    await eventually(lambda: held(bob, gid), equals=(1, 0))
    from_alice, from_carol = Peer(alice, bob), Peer(carol, bob)
    data = b"the minutes"

    def offer(**change: Any) -> FileOfferBody:
        fields: dict[str, Any] = {
            "transfer_id": b64e(os.urandom(16)),
            "name": "minutes.txt",
            "size": len(data),
            "media_type": "text/plain",
            "sha256": b64e(hashlib.sha256(data).digest()),
            "key": b64e(os.urandom(32)),
            "token": b64e(os.urandom(32)),
            "chunk_bytes": 65536,
            "data": b64e(data),
            **change,
        }
        return FileOfferBody(**fields)

    def body(the_offer: FileOfferBody, group_heads: list[str] = heads) -> GroupFileBody:
        return GroupFileBody(
            group=gid, id=new_message_id(), seq=1, heads=group_heads, offer=the_offer
        )

    cases = [
        (from_carol, sealed(carol, bob, "group_file", body(offer())), 403, "not_member"),
        (from_alice, sealed(alice, bob, "group_file", body(offer(transfer_id="AA"))), 400,
         "bad_envelope"),
        (from_alice, sealed(alice, bob, "group_file", body(offer(name="../x"))), 400,
         "bad_file_name"),
        (from_alice, sealed(alice, bob, "group_file", body(offer(data=b64e(b"other bytes!")))),
         400, "bad_envelope"),
        (from_alice, sealed(alice, bob, "group_file", body(offer(sha256=b64e(bytes(32))))), 400,
         "hash_mismatch"),
        (from_alice, sealed(alice, bob, "group_file", body(offer(), ["A" * 43])), 503,
         "unavailable"),
    ]  # fmt: skip
    for peer, envelope, status, code in cases:
        assert (await refused(peer, envelope))[:2] == (status, code), code
    assert await held(bob, gid) == (1, 0)
    assert await file_store.stored_names(services_of(bob).ctx.db) == set()
    # The same transfer id in another envelope: refused, the first one kept.
    first = offer()
    status, reply = await from_alice.post([sealed(alice, bob, "group_file", body(first))])
    assert status == 200 and reply["results"][0]["status"] == "stored", reply
    again = sealed(alice, bob, "group_file", body(first))
    assert (await refused(from_alice, again))[:2] == (400, "duplicate_transfer")
    assert await held(bob, gid) == (1, 1)
    # A file sent to a membership bob is not in (he was removed before it): left_group.
    removed = await groups_of(alice).change(gid, "remove", ["bob"])
    await eventually(lambda: held(bob, gid), equals=(2, 1))
    late = sealed(alice, bob, "group_file", body(offer(), list(removed.heads)))
    assert (await refused(from_alice, late))[:2] == (410, "left_group")
    assert await held(bob, gid) == (2, 1)


async def test_a_member_resumes_after_a_restart_and_a_member_who_declines_serves_nothing(
    cluster: Cluster,
) -> None:
    """bob (the first recipient, fetching from alice) stops mid-file and comes back: he asks
    from the first chunk he does not hold, so alice serves the file about once. carol declines:
    her copy is deleted and she serves it to nobody (410)."""
    await cluster.start_directory()
    settings = await cluster.enroll("alice", files__chunk_bytes=CHUNK)
    settings.files.send_rate_bytes_s = 1024 * 1024  # four seconds for the file: time to stop bob
    await cluster.start_daemon("alice", settings=settings)
    for name in ("bob", "carol"):
        await cluster.add_user(name, files__chunk_bytes=CHUNK)
    nodes = cluster.daemons
    gid = await group_of(cluster, "alice", ["bob", "carol"])
    ui = await cluster.ui("alice")
    data = random_bytes(64 * CHUNK, seed=5)
    bob_settings = services_of(nodes["bob"]).ctx.settings
    tid = (await ui.send_group_file(gid, "big.bin", data))["file"]["transfer_id"]

    async def part_way(node: Daemon) -> bool:
        found = await transfer(node, "alice", "in", tid)
        return found is not None and 0 < found.held_bytes < len(data)

    await eventually(lambda: part_way(nodes["bob"]), equals=True, timeout=TIMEOUT_S)
    status, reply = await (await cluster.ui("carol")).post(
        f"/ui/api/groups/{gid}/files/alice/{tid}/decline", {}
    )
    assert status == 200 and reply["file"]["state"] == "declined", reply
    await cluster.stop_daemon("bob")
    bob = await cluster.start_daemon("bob", settings=bob_settings)
    await eventually(lambda: state_of(bob, "alice", tid), equals="complete", timeout=TIMEOUT_S)
    assert await content(cluster, "bob", gid, "alice", tid) == data
    # What alice served is counted when each answer ends (just after bob verified the last chunk).
    await eventually(lambda: served(nodes["alice"], "alice", "out", tid, len(data)), equals=True)
    own = await transfer(nodes["alice"], "alice", "out", tid)
    assert own is not None and own.sent_bytes < 1.5 * len(data)
    token = own.upload_token
    status, reply = await ask_chunks(bob, nodes["carol"], "alice", tid, token)
    assert (status, reply["error"]) == (410, "transfer_closed")
    assert await state_of(nodes["carol"], "alice", tid) == "declined"

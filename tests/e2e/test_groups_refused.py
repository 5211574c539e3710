"""Bad group input from peers (PROTOCOL.md §19.4, §19.5): each refusal a 4xx with its JSON reason,
nothing stored. The envelopes are built, signed and sealed by hand, as a hostile member would."""

from __future__ import annotations

import time
from typing import Any

from flame.core import groups as rules
from flame.core.envelope import new_message_id, seal
from flame.core.group_models import GroupOp, GroupOpsBody, GroupTextBody
from flame.core.models import Envelope, Inner, Wire
from flame.daemon import Daemon
from flame.store import groups as group_store
from tests.cluster import Cluster, account_of, eventually, services_of
from tests.e2e.test_groups import groups_of
from tests.e2e.test_peer_api import Peer


def sealed(sender: Daemon, to: Daemon, kind: str, body: Wire) -> Envelope:
    s, r = services_of(sender).ctx, account_of(to)
    inner = Inner(
        from_=s.me,
        to=r.username,
        id=new_message_id(),
        seq=0,
        ts=int(time.time() * 1000),
        kind=kind,
        body=body,
    )
    return seal(s.keys.identity().exchange, r.username, r.x25519_key, inner)


def signed(node: Daemon, group: str, kind: Any, parents: list[str], **args: Any) -> GroupOp:
    ctx = services_of(node).ctx
    return rules.make_op(ctx.keys.identity(), ctx.me, group, kind, parents, 1, **args)


async def held(node: Daemon, gid: str) -> tuple[int, int]:
    """(operations, messages) the daemon holds of the group."""
    db = services_of(node).ctx.db
    ops = len(await group_store.held_ops(db, gid))
    row = await db.fetchone("SELECT count(*) FROM group_messages WHERE group_id=?", (gid,))
    assert row is not None
    return ops, int(row[0])


async def refused(peer: Peer, envelope: Envelope) -> tuple[int, str, str]:
    status, reply = await peer.post([envelope])
    result = reply["results"][0]
    assert result["status"] == "rejected"
    assert reply["error"] == result["error"] and reply["message"]
    return status, result["error"], result["message"]


async def test_every_bad_group_input_is_refused_with_its_reason_and_nothing_stored(
    trio: Cluster,
) -> None:
    alice, bob, carol = (trio.daemons[n] for n in ("alice", "bob", "carol"))
    group = await groups_of(alice).create("Board", ["bob"], None)
    gid = group.id
    await eventually(lambda: held(bob, gid), equals=(1, 0))
    heads = list(group.heads)
    from_alice, from_bob, from_carol = Peer(alice, bob), Peer(bob, alice), Peer(carol, bob)

    def text(body_text: str = "hi") -> GroupTextBody:
        return GroupTextBody(group=gid, id=new_message_id(), seq=1, heads=heads, text=body_text)

    # A group message from a non-member.
    assert (await refused(from_carol, sealed(carol, bob, "group_text", text())))[:2] == (
        403,
        "not_member",
    )
    # A membership change by a member who is not an admin (bob to alice).
    add = signed(bob, gid, "add", heads, members=["carol"])
    body = GroupOpsBody(group=gid, ops=[add])
    assert (await refused(from_bob, sealed(bob, alice, "group_ops", body)))[:2] == (
        403,
        "not_admin",
    )
    # A change for a group the receiver knows nothing of.
    other = rules.new_group_id()
    rename = signed(carol, other, "rename", heads, name="Mine")
    body = GroupOpsBody(group=other, ops=[rename])
    status, code, message = await refused(from_carol, sealed(carol, bob, "group_ops", body))
    assert (status, code) == (404, "unknown_group") and "no such group" in message
    # A forged change: carol's signature on an operation naming alice as its author.
    forged = signed(carol, gid, "add", heads, members=["carol"]).model_copy(
        update={"author": "alice"}
    )
    body = GroupOpsBody(group=gid, ops=[forged])
    assert (await refused(from_carol, sealed(carol, bob, "group_ops", body)))[:2] == (
        400,
        "bad_op_signature",
    )
    # A member list over the limit, and a name over the limit (by the real admin).
    crowd = signed(alice, gid, "add", heads, members=[f"user{i:03}" for i in range(100)])
    body = GroupOpsBody(group=gid, ops=[crowd])
    assert (await refused(from_alice, sealed(alice, bob, "group_ops", body)))[:2] == (
        400,
        "too_many_members",
    )
    long_name = signed(alice, gid, "rename", heads, name="x" * 65)
    body = GroupOpsBody(group=gid, ops=[long_name])
    assert (await refused(from_alice, sealed(alice, bob, "group_ops", body)))[:2] == (
        400,
        "name_too_long",
    )
    assert await held(bob, gid) == (1, 0) and await held(alice, gid) == (1, 0)

    # A replayed operation changes nothing: answered as a duplicate.
    ops = await group_store.held_ops(services_of(alice).ctx.db, gid)
    replay = GroupOpsBody(group=gid, ops=list(ops.values()))
    status, reply = await from_carol.post([sealed(carol, bob, "group_ops", replay)])
    assert (status, reply["results"][0]["status"]) == (200, "duplicate")
    assert await held(bob, gid) == (1, 0)

    # A message for a group the receiver left.
    await groups_of(bob).change(gid, "leave")
    status, code, _ = await refused(from_alice, sealed(alice, bob, "group_text", text("back?")))
    assert (status, code) == (410, "left_group")
    assert await held(bob, gid) == (2, 0)

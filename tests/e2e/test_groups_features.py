"""The `groups` hello feature (PROTOCOL.md §9, §19) with real daemons: a member whose daemon does
not list it (one of an earlier version: its advertised features set so here) is sent no group
envelope at all, and its copy of a group message fails at once with a reason that says why; the
other members get theirs."""

from __future__ import annotations

from flame.core.hello import FEATURES
from tests.cluster import Cluster, eventually, services_of
from tests.e2e.test_groups import membership, texts
from tests.social import online_for

TIMEOUT_S = 30.0


async def test_a_member_whose_daemon_lacks_groups_gets_a_clear_failure(trio: Cluster) -> None:
    carol = trio.daemons["carol"]
    assert carol.holder is not None
    carol.holder.features = tuple(f for f in FEATURES if f != "groups")  # an earlier version
    await online_for(trio, "alice", "bob", "carol")
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    gid = (await services_of(alice).groups.create("Board", ["bob", "carol"], None)).id
    await eventually(lambda: membership(bob, gid), equals=await membership(alice, gid))
    ui = await trio.ui("alice")
    status, reply = await ui.post(f"/ui/api/groups/{gid}/messages", {"text": "Q3 numbers"})
    assert status == 201, reply
    copies = {c["member"]: c for c in reply["message"]["copies"]}
    assert copies["carol"]["state"] == "failed"
    assert "carol's Flame does not support groups" in copies["carol"]["error"]
    assert copies["bob"]["state"] != "failed"
    await eventually(lambda: texts(bob, gid), equals=[("alice", 1, "Q3 numbers")],
                     timeout=TIMEOUT_S)  # fmt: skip
    # carol's daemon was sent nothing of the group: no operation, no message, no envelope queued.
    db = services_of(carol).ctx.db
    assert await db.fetchall("SELECT hash FROM group_ops") == []
    assert await db.fetchall("SELECT id FROM group_messages") == []
    queued = await services_of(alice).ctx.db.fetchall("SELECT kind FROM outbox WHERE peer='carol'")
    assert [row[0] for row in queued if str(row[0]).startswith("group")] == []

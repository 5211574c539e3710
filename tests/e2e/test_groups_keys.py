"""A group member's key change with real daemons (PROTOCOL.md §19.5; the issue: "key changes of a
member are shown and the member's messages are held until the change is accepted"): the copies
to that member are held, never sealed under the key that changed and never failed, while the
other members get theirs; once the user accepts the new key, the member's new daemon is sent the
group's operations and every held copy, in order."""

from __future__ import annotations

import time
from functools import partial

from flame.daemon import Daemon
from flame.store import groups as group_store
from tests.cluster import Cluster, eventually, services_of
from tests.e2e.test_groups import membership, texts

TIMEOUT_S = 30.0


async def held(node: Daemon) -> list[tuple[str, str]]:
    rows = await services_of(node).ctx.db.fetchall(
        "SELECT h.member, g.text FROM group_held h JOIN group_copies c ON c.copy_id = h.copy_id"
        " JOIN group_messages g ON g.id = c.group_message ORDER BY g.seq"
    )
    return [(row[0], row[1]) for row in rows]


async def copy_states(node: Daemon, group_id: str) -> dict[str, list[tuple[str, str | None]]]:
    db = services_of(node).ctx.db
    messages = await group_store.list_messages(db, group_id, before=None, limit=10)
    copies = await group_store.copies_of(db, [m.id for m in messages])
    return {m.text: [(c.member, c.state) for c in copies[m.id]] for m in messages}


async def test_copies_to_a_member_are_held_until_their_new_key_is_accepted(trio: Cluster) -> None:
    alice = trio.daemons["alice"]
    gid = (await services_of(alice).groups.create("Board", ["bob", "carol"], None)).id
    for name in ("bob", "carol"):
        want = await membership(alice, gid)
        await eventually(partial(membership, trio.daemons[name], gid), equals=want)
    ui = await trio.ui("alice")
    feed = await ui.websocket()
    await trio.stop_daemon("bob")
    first = await services_of(alice).groups.send_text(gid, "before the key change")
    # bob's laptop is replaced: he enrolls new keys (the new daemon is not started yet).
    assert trio.directory is not None and trio.directory.store is not None
    invite = await trio.directory.store.create_invite(
        "bob", rekey=True, now=int(time.time()), ttl_s=600
    )
    settings = await trio.enroll("bob", invite=invite, folder="bob-new-laptop")
    await feed.wait_for(lambda e: e["type"] == "key_change" and e["username"] == "bob")
    # The copy queued under the old key is taken out of the outbox and held, not failed.
    await eventually(lambda: held(alice), equals=[("bob", "before the key change")],
                     timeout=TIMEOUT_S)  # fmt: skip
    status, reply = await ui.post(f"/ui/api/groups/{gid}/messages", {"text": "while pending"})
    assert status == 201, reply  # not refused: a group message goes to the others
    copy = next(c for c in reply["message"]["copies"] if c["member"] == "bob")
    assert copy["state"] == "sending" and "accept bob's new key" in copy["error"]
    assert await held(alice) == [("bob", "before the key change"), ("bob", "while pending")]
    carol = trio.daemons["carol"]
    await eventually(lambda: texts(carol, gid), timeout=TIMEOUT_S, equals=[
        ("alice", 1, "before the key change"), ("alice", 2, "while pending"),
    ])  # fmt: skip
    states = await copy_states(alice, gid)
    assert ("bob", "sending") in states["while pending"]
    assert ("bob", "sending") in states[first.text]

    # The new daemon comes up; alice compares safety numbers and accepts: bob's new daemon gets
    # the group's operations, then both messages, in order.
    new_bob = await trio.start_daemon("bob", settings=settings)
    status, _ = await ui.post("/ui/api/contacts/bob/accept-key", {})
    assert status == 200
    assert await held(alice) == []
    await eventually(lambda: texts(new_bob, gid), timeout=TIMEOUT_S, equals=[
        ("alice", 1, "before the key change"), ("alice", 2, "while pending"),
    ])  # fmt: skip
    assert await membership(new_bob, gid) == await membership(alice, gid)

    async def bobs() -> list[str]:
        found = await copy_states(alice, gid)
        return [str(state) for text in found for member, state in found[text] if member == "bob"]

    await eventually(bobs, equals=["delivered", "delivered"], timeout=TIMEOUT_S)

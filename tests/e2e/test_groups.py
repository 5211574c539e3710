"""Groups end to end with real daemons (PROTOCOL.md §19): a group of four with one member offline
for part of it, each message once to each member and in each author's order; a removed member's
daemon receives nothing sent after the removal; a new member nothing from before; two admins
changing the membership at once converge; what receivers refuse."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from flame.core import groups as rules
from flame.daemon import Daemon
from flame.services.events import Event, GroupChanged, GroupMessageAdded
from flame.services.groups import Groups
from flame.store import groups as group_store
from tests.cluster import Cluster, eventually, services_of

TIMEOUT_S = 20.0


def groups_of(node: Daemon) -> Groups:
    return services_of(node).groups


async def wait_event(node: Daemon, check: Callable[[Event], bool], work: Any = None) -> Event:
    """Subscribe to `node`'s events, run `work` (a coroutine), and wait for an event that
    `check` accepts."""
    feed = services_of(node).ctx.events.subscribe()
    try:
        if work is not None:
            await work
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                event = await feed.get()
                if event is not None and check(event):
                    return event
    finally:
        services_of(node).ctx.events.unsubscribe(feed)


def group_changed(group_id: str, check: Callable[[group_store.Group], bool]) -> Any:
    return lambda e: (
        isinstance(e, GroupChanged) and e.card.group.id == group_id and check(e.card.group)
    )


async def texts(node: Daemon, group_id: str) -> list[tuple[str, int, str]]:
    """(author, seq, text) of every group message this daemon holds, as stored."""
    db = services_of(node).ctx.db
    rows = await db.fetchall(
        "SELECT author, seq, text FROM group_messages WHERE group_id=? ORDER BY author, seq",
        (group_id,),
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def membership(node: Daemon, group_id: str) -> tuple[Any, ...] | None:
    group = await group_store.get_group(services_of(node).ctx.db, group_id)
    if group is None:
        return None
    return (group.name, group.members, group.admins, group.heads)


async def start(cluster: Cluster, *names: str) -> None:
    await cluster.start_directory()
    for name in names:
        await cluster.add_user(name)


async def test_a_group_of_four_with_one_offline_gets_every_message_once(cluster: Cluster) -> None:
    await start(cluster, "alice", "bob", "carol", "dave")
    await cluster.stop_daemon("dave")
    alice, bob = cluster.daemons["alice"], cluster.daemons["bob"]
    created = await groups_of(alice).create("Board", ["bob", "carol", "dave"], None)
    gid = created.id
    assert set(created.members) == {"alice", "bob", "carol", "dave"}
    await eventually(lambda: membership(bob, gid), equals=await membership(alice, gid))
    for text in ("a1", "a2", "a3"):
        await groups_of(alice).send_text(gid, text)
    for text in ("b1", "b2"):
        await groups_of(bob).send_text(gid, text)
    everything = [
        ("alice", 1, "a1"),
        ("alice", 2, "a2"),
        ("alice", 3, "a3"),
        ("bob", 1, "b1"),
        ("bob", 2, "b2"),
    ]
    carol = cluster.daemons["carol"]
    await eventually(lambda: texts(carol, gid), equals=everything, timeout=TIMEOUT_S)
    dave = await cluster.start_daemon("dave")  # back: the outboxes (and relays) bring it all
    await eventually(lambda: texts(dave, gid), equals=everything, timeout=TIMEOUT_S)
    assert await membership(dave, gid) == await membership(alice, gid)
    # Per member: alice's copies of her first message reach "delivered" at each of the three.
    db = services_of(alice).ctx.db
    first = (await group_store.list_messages(db, gid, before=None, limit=10))[0]

    async def states() -> list[str]:
        copies = (await group_store.copies_of(db, [first.id]))[first.id]
        return [c.state for c in copies]

    await eventually(states, equals=["delivered"] * 3, timeout=TIMEOUT_S)
    assert [c.member for c in (await group_store.copies_of(db, [first.id]))[first.id]] == [
        "bob",
        "carol",
        "dave",
    ]
    for node in (alice, bob, carol, dave):  # nothing twice anywhere
        assert len(await texts(node, gid)) == len(set(await texts(node, gid)))


async def test_a_removed_member_receives_nothing_sent_after_the_removal(cluster: Cluster) -> None:
    await start(cluster, "alice", "bob", "carol")
    alice, bob, carol = (cluster.daemons[n] for n in ("alice", "bob", "carol"))
    gid = (await groups_of(alice).create("Deal", ["bob", "carol"], None)).id
    await eventually(lambda: membership(carol, gid), equals=await membership(alice, gid))
    await groups_of(alice).send_text(gid, "before")
    await eventually(lambda: texts(carol, gid), equals=[("alice", 1, "before")])

    removed = group_changed(gid, lambda g: not g.is_member)
    await wait_event(carol, removed, groups_of(alice).change(gid, "remove", ["carol"]))
    await eventually(lambda: membership(bob, gid), equals=await membership(alice, gid))
    opened = services_of(carol).inbox.decryptions
    await wait_event(
        bob,
        lambda e: isinstance(e, GroupMessageAdded) and e.message.text == "after",
        groups_of(alice).send_text(gid, "after"),
    )
    await wait_event(
        alice,
        lambda e: isinstance(e, GroupMessageAdded) and e.message.text == "after from bob",
        groups_of(bob).send_text(gid, "after from bob"),
    )
    # Neither sender sent carol an envelope (on the wire: her daemon opened none) ...
    assert services_of(carol).inbox.decryptions == opened
    # ... and her database holds nothing of what was written after the removal.
    assert await texts(carol, gid) == [("alice", 1, "before")]
    group = await group_store.get_group(services_of(carol).ctx.db, gid)
    assert group is not None and not group.is_member and "carol" not in group.members
    with pytest.raises(Exception, match="not in this group"):
        await groups_of(carol).send_text(gid, "let me back")


async def test_a_new_member_sees_nothing_from_before(cluster: Cluster) -> None:
    await start(cluster, "alice", "bob", "erin")
    alice, erin = cluster.daemons["alice"], cluster.daemons["erin"]
    gid = (await groups_of(alice).create("Board", ["bob"], None)).id
    await groups_of(alice).send_text(gid, "before erin")
    joined = group_changed(gid, lambda g: g.is_member)
    await wait_event(erin, joined, groups_of(alice).change(gid, "add", ["erin"]))
    assert await texts(erin, gid) == []
    await wait_event(
        erin,
        lambda e: isinstance(e, GroupMessageAdded),
        groups_of(alice).send_text(gid, "welcome"),
    )
    assert await texts(erin, gid) == [("alice", 2, "welcome")]
    assert await membership(erin, gid) == await membership(alice, gid)


async def test_two_admins_changing_the_membership_at_once_converge(cluster: Cluster) -> None:
    await start(cluster, "alice", "bob", "carol", "dave", "erin")
    nodes = {name: cluster.daemons[name] for name in ("alice", "bob", "carol", "dave", "erin")}
    alice, bob = nodes["alice"], nodes["bob"]
    gid = (await groups_of(alice).create("Board", ["bob", "carol"], None)).id
    promoted = group_changed(gid, lambda g: "bob" in g.admins)
    await wait_event(bob, promoted, groups_of(alice).change(gid, "promote", ["bob"]))

    # Compatible at once: alice adds dave while bob renames the group.
    await asyncio.gather(
        groups_of(alice).change(gid, "add", ["dave"]),
        groups_of(bob).change(gid, "rename", name="Board of directors"),
    )
    for name in ("alice", "bob", "carol", "dave"):
        await eventually(
            partial(_name_and_members, nodes[name], gid),
            equals=("Board of directors", ("alice", "bob", "carol", "dave")),
            timeout=TIMEOUT_S,
        )
    final = await membership(alice, gid)
    for name in ("bob", "carol", "dave"):
        await eventually(partial(membership, nodes[name], gid), equals=final)

    # Conflicting at once: alice removes bob while bob adds erin: the removal wins (§19.3 rule 4).
    await asyncio.gather(
        groups_of(alice).change(gid, "remove", ["bob"]),
        groups_of(bob).change(gid, "add", ["erin"]),
    )
    held = await group_store.held_ops(services_of(alice).ctx.db, gid)
    await eventually(lambda: _count_ops(alice, gid), equals=len(held) + 1, timeout=TIMEOUT_S)
    for name in ("alice", "carol", "dave"):
        await eventually(
            partial(_name_and_members, nodes[name], gid),
            equals=("Board of directors", ("alice", "carol", "dave")),
            timeout=TIMEOUT_S,
        )
    final = await membership(alice, gid)
    for name in ("carol", "dave"):
        await eventually(partial(membership, nodes[name], gid), equals=final)
    ops = await group_store.held_ops(services_of(alice).ctx.db, gid)
    removal = next(h for h, o in ops.items() if o.op == "remove")
    add = next(h for h, o in ops.items() if o.op == "add" and o.members == ["erin"])
    assert not rules.follows(ops, removal, add) and not rules.follows(ops, add, removal)
    # Erin, added by an admin removed at the same time, learns from him that she is not in.
    await eventually(lambda: _is_member(nodes["erin"], gid), equals=False, timeout=TIMEOUT_S)


async def _name_and_members(node: Daemon, gid: str) -> tuple[str, tuple[str, ...]] | None:
    group = await group_store.get_group(services_of(node).ctx.db, gid)
    return None if group is None else (group.name, group.members)


async def _count_ops(node: Daemon, gid: str) -> int:
    return len(await group_store.held_ops(services_of(node).ctx.db, gid))


async def _is_member(node: Daemon, gid: str) -> bool | None:
    group = await group_store.get_group(services_of(node).ctx.db, gid)
    return None if group is None else group.is_member

"""What one-to-one conversations promise, held per member in groups (PROTOCOL.md §19): the group
kinds travel under version 1 as under version 2, an offline member gets what was written through
relays, a blocked member's daemon gets no new group messages and theirs are not taken, and groups
work with the directory down."""

from __future__ import annotations

import pytest

from flame.errors import Unavailable
from flame.services.events import GroupMessageAdded
from flame.store import groups as group_store
from tests.cluster import Cluster, eventually, services_of
from tests.e2e.test_groups import groups_of, membership, texts, wait_event
from tests.e2e.test_relays import offline, start_four


async def test_groups_travel_under_version_1_too(cluster: Cluster) -> None:
    await cluster.start_directory()
    for name in ("alice", "bob", "carol"):
        settings = await cluster.enroll(name)
        settings.security.max_version = 1 if name == "bob" else 2
        await cluster.start_daemon(name, settings=settings)
    alice, bob, carol = (cluster.daemons[n] for n in ("alice", "bob", "carol"))
    gid = (await groups_of(alice).create("Old and new", ["bob", "carol"], None)).id  # bob: v1
    await eventually(lambda: membership(carol, gid), equals=await membership(alice, gid))
    await groups_of(alice).send_text(gid, "from alice")
    await groups_of(carol).send_text(gid, "from carol")
    both = [("alice", 1, "from alice"), ("carol", 1, "from carol")]
    for node in (alice, bob, carol):
        await eventually(lambda n=node: texts(n, gid), equals=both)  # type: ignore[misc]
    # Carol and alice's daemons sealed each other's copies under a session (version 2); bob's,
    # with none possible, as version 1 envelopes.
    db = services_of(alice).ctx.db
    rows = await db.fetchall("SELECT DISTINCT peer FROM ratchet_sessions")
    assert {row[0] for row in rows} == {"carol"}


async def test_a_blocked_member_gets_nothing_and_is_not_heard(trio: Cluster) -> None:
    alice, bob, carol = (trio.daemons[n] for n in ("alice", "bob", "carol"))
    gid = (await groups_of(alice).create("Board", ["bob", "carol"], None)).id
    await eventually(lambda: membership(bob, gid), equals=await membership(alice, gid))
    await services_of(alice).blocks.block("bob")
    opened = services_of(bob).inbox.decryptions
    await wait_event(
        carol,
        lambda e: isinstance(e, GroupMessageAdded) and e.message.text == "not for bob",
        groups_of(alice).send_text(gid, "not for bob"),
    )
    assert services_of(bob).inbox.decryptions == opened  # no envelope reached bob's daemon
    assert await texts(bob, gid) == []
    await wait_event(
        carol,
        lambda e: isinstance(e, GroupMessageAdded) and e.message.text == "from bob",
        groups_of(bob).send_text(gid, "from bob"),
    )
    db = services_of(bob).ctx.db

    async def tried() -> bool:  # bob's daemon called alice's with its copy, and was refused
        row = await db.fetchone(
            "SELECT attempts FROM outbox WHERE peer='alice' AND kind='group_text'"
        )
        return row is not None and row[0] >= 1

    await eventually(tried, equals=True)
    assert ("bob", 1, "from bob") not in await texts(alice, gid)


async def test_a_group_works_with_the_directory_down(trio: Cluster) -> None:
    alice, bob, carol = (trio.daemons[n] for n in ("alice", "bob", "carol"))
    gid = (await groups_of(alice).create("Board", ["bob", "carol"], None)).id
    await eventually(lambda: membership(carol, gid), equals=await membership(alice, gid))
    directory = trio.directory
    assert directory is not None
    await directory.stop()
    await wait_event(
        bob,
        lambda e: isinstance(e, GroupMessageAdded) and e.message.text == "no directory",
        groups_of(alice).send_text(gid, "no directory"),
    )
    await eventually(lambda: texts(carol, gid), equals=[("alice", 1, "no directory")])
    await groups_of(alice).change(gid, "rename", name="Board, directory down")
    await eventually(
        lambda: membership(carol, gid), equals=await membership(alice, gid), timeout=20
    )


async def test_an_offline_member_gets_it_through_relays_with_the_author_gone(
    cluster: Cluster,
) -> None:
    await start_four(cluster)
    alice, dave = cluster.daemons["alice"], cluster.daemons["dave"]
    gid = (await groups_of(alice).create("Board", ["bob", "carol", "dave"], None)).id
    await eventually(lambda: membership(dave, gid), equals=await membership(alice, gid))
    ui = await cluster.ui("alice")
    await offline(cluster, ui, await ui.websocket(), "dave")
    sent = await groups_of(alice).send_text(gid, "while you were away")
    db = services_of(alice).ctx.db

    async def to_dave() -> str:
        copies = await group_store.copies_of(db, [sent.id])
        return next(c.state for c in copies[sent.id] if c.member == "dave")

    await eventually(to_dave, equals="relayed")  # no event for a copy's relayed state
    await cluster.stop_daemon("alice")  # the author goes too: only the relays hold it now
    dave = await cluster.start_daemon("dave")
    await eventually(
        lambda: texts(dave, gid), equals=[("alice", 1, "while you were away")], timeout=20
    )


async def test_a_member_that_cannot_be_sealed_to_now_means_nobody_is_sent_anything(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    for name in ("alice", "bob", "dave"):
        settings = await cluster.enroll(name)
        settings.security.min_version = 2  # no version 1 fallback: a session or nothing
        await cluster.start_daemon(name, settings=settings)
    alice, bob = cluster.daemons["alice"], cluster.daemons["bob"]
    gid = (await groups_of(alice).create("Board", ["bob"], None)).id  # a session with bob
    await eventually(lambda: membership(bob, gid), equals=await membership(alice, gid))
    await services_of(alice).contacts.find("dave")  # pinned, but no session with dave yet
    directory = cluster.directory
    assert directory is not None
    await directory.stop()  # no prekey of dave's can be claimed now
    with pytest.raises(Unavailable) as refused:
        await groups_of(alice).change(gid, "add", ["dave"])
    assert refused.value.code == "no_session" and "dave" in refused.value.message
    assert len(await group_store.held_ops(services_of(alice).ctx.db, gid)) == 1  # nothing kept
    with pytest.raises(Unavailable):
        await groups_of(alice).create("Deal", ["bob", "dave"], None)
    assert [g.name for g in await group_store.list_groups(services_of(bob).ctx.db)] == ["Board"]

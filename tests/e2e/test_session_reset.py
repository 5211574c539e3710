"""A broken session heals (PROTOCOL.md §14.9): bob's daemon comes back from an old copy of its
data folder (a restored backup), so its sessions are behind alice's. What alice sends next does
not open; she starts a new session, seals it again, and it arrives; both users are told."""

from __future__ import annotations

import shutil

from tests.cluster import Cluster, services_of
from tests.e2e.test_forward_secrecy import text_is


async def test_a_peer_restored_from_an_old_backup_gets_a_new_session_and_every_message(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    bob_settings = await cluster.enroll("bob")
    await cluster.add_user("alice")
    await cluster.start_daemon("bob", settings=bob_settings)
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    a_feed, b_feed = await alice.websocket(), await bob.websocket()
    await alice.wait_status(a_feed, "bob", "online")
    await alice.send("bob", "before the backup")
    await b_feed.wait_for(text_is("before the backup"))
    await cluster.stop_daemon("bob")
    folder = bob_settings.daemon_data_dir()
    backup = folder.with_name("bob-backup")
    shutil.copytree(folder, backup, ignore=shutil.ignore_patterns("flame.lock"))
    await cluster.start_daemon("bob", settings=bob_settings)
    bob = await cluster.ui("bob")
    b_feed = await bob.websocket()
    for line in ("after the backup 1", "after the backup 2"):  # the sessions move on
        await alice.send("bob", line)
        await b_feed.wait_for(text_is(line))
    await bob.send("alice", "bob answers")  # a ratchet step that the backup never saw
    await a_feed.wait_for(text_is("bob answers"))
    await alice.send("bob", "on the new chain")
    await b_feed.wait_for(text_is("on the new chain"))

    await cluster.stop_daemon("bob")  # the disk dies; bob restores last week's backup
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)
    await cluster.start_daemon("bob", settings=bob_settings)
    bob = await cluster.ui("bob")
    b_feed = await bob.websocket()
    await alice.wait_status(a_feed, "bob", "online")
    lost = ["after the restore 1", "after the restore 2", "after the restore 3"]
    for line in lost:
        await alice.send("bob", line)
    for line in lost:
        await b_feed.wait_for(text_is(line), 30)
    # Both were told (the notices came before the messages that were sealed again).
    assert {"type": "session_reset", "username": "alice"} in b_feed.seen
    if {"type": "session_reset", "username": "bob"} not in a_feed.seen:
        await a_feed.wait_for(lambda e: e == {"type": "session_reset", "username": "bob"})
    assert services_of(cluster.daemons["alice"]).sessions.resets >= 1
    texts = [m["text"] for m in await bob.messages("alice") if m["direction"] == "in"]
    assert [t for t in texts if t.startswith("after the restore")] == lost  # each once, in order
    await bob.send("alice", "and back, under the new session")
    await a_feed.wait_for(text_is("and back, under the new session"))

"""A broken session heals (PROTOCOL.md §14.9): bob's daemon comes back from an old copy of its
data folder (a restored backup), so its sessions are behind alice's. What alice sends next does
not open; she starts a new session, seals it again, and it arrives; both users are told."""

from __future__ import annotations

import shutil
import time

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


async def test_a_reinstalled_peer_with_a_fresh_folder_gets_a_new_session_once_its_key_is_accepted(
    cluster: Cluster,
) -> None:
    """bob reinstalls: a fresh data folder, his user rekeyed by the admin. alice's old session is
    useless to him; once she accepts his new key, what she sends arrives under version 2 in a new
    session, each once, in order, and he answers under it."""
    await cluster.start_directory()
    await cluster.add_user("alice")
    await cluster.add_user("bob")
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    a_feed, b_feed = await alice.websocket(), await bob.websocket()
    await alice.wait_status(a_feed, "bob", "online")
    await alice.send("bob", "before the reinstall")
    await b_feed.wait_for(text_is("before the reinstall"))

    await cluster.stop_daemon("bob")
    assert cluster.directory is not None and cluster.directory.store is not None
    code = await cluster.directory.store.create_invite(
        "bob", rekey=True, now=int(time.time()), ttl_s=600
    )
    settings = await cluster.enroll("bob", invite=code, folder="bob-reinstalled")
    await cluster.start_daemon("bob", settings=settings)
    await a_feed.wait_for(lambda e: e == {"type": "key_change", "username": "bob"})
    status, accepted = await alice.post("/ui/api/contacts/bob/accept-key", {})
    assert status == 200 and accepted["key_changed"] is False
    bob = await cluster.ui("bob")
    b_feed = await bob.websocket()
    await alice.wait_status(a_feed, "bob", "online")
    lines = ["after the reinstall 1", "after the reinstall 2"]
    for line in lines:
        await alice.send("bob", line)
    for line in lines:
        await b_feed.wait_for(text_is(line), 30)
    received = [m for m in await bob.messages("alice") if m["direction"] == "in"]
    assert [m["text"] for m in received] == lines  # a fresh folder: only what came after
    assert {m["protocol_version"] for m in received} == {2}
    await bob.send("alice", "back, under the new session")
    event = await a_feed.wait_for(text_is("back, under the new session"))
    assert event["message"]["protocol_version"] == 2

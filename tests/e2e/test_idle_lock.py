"""security.lock_after_idle_s (docs/ARCHITECTURE.md, "Locked and unlocked"): a daemon whose UI
is not used for that long locks again, as a restarted one is: its loops stop, its database
closes, its keys leave memory, its pages must log in again, and its peers see it offline and
keep their messages queued until the next login."""

from __future__ import annotations

import aiohttp

from flame.devtools.ui import Feed
from tests.cluster import Cluster, services_of
from tests.social import hello_from


async def closed_by_the_daemon(feed: Feed, timeout_s: float = 20.0) -> None:
    """Until the daemon ends this live feed (events on the way are read and dropped)."""
    closing = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
    while (await feed.ws.receive(timeout=timeout_s)).type not in closing:
        pass


async def test_an_idle_ui_locks_the_daemon_and_peers_queue_until_the_next_login(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice", security__lock_after_idle_s=1.0)
    await cluster.add_user("bob")
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    bob_feed = await bob_ui.websocket()
    await bob_ui.wait_status(bob_feed, "alice", "online")
    alice_feed = await alice_ui.websocket()
    unlocked = services_of(alice)

    await closed_by_the_daemon(alice_feed)  # nobody used alice's page for a second
    assert alice_feed.ws.close_code == 4401  # the session ended: the page logs in again
    assert alice.services is None and alice.supervisor is None
    assert not unlocked.ctx.keys.is_unlocked and unlocked.ctx.db.closed
    status, _ = await alice_ui.get("/ui/api/me")
    assert status == 401  # every page logs in again
    assert await hello_from(cluster.daemons["bob"], alice) == {"locked": True}
    await bob_ui.wait_status(bob_feed, "alice", "offline")  # it logged off at the directory
    await bob_ui.send("alice", "while you were away")
    assert [m["state"] for m in await bob_ui.messages("alice")] == ["sending"]

    again = await cluster.ui("alice")  # the next login unlocks it again
    feed = await again.websocket()
    if [m["text"] for m in await again.messages("bob")] != ["while you were away"]:
        await feed.wait_for(lambda e: e["type"] == "message")
    assert [m["text"] for m in await again.messages("bob")] == ["while you were away"]
    assert alice.services is not None and alice.services is not unlocked


async def test_ui_requests_and_the_pages_activity_count_as_use_but_pings_do_not(
    trio: Cluster,
) -> None:
    alice = trio.daemons["alice"]
    assert alice.idle_watch is None  # lock_after_idle_s = 0: never locks by itself
    ui = await trio.ui("alice")
    state = alice.ui_state
    before = state.last_activity
    await ui.get_json("/ui/api/me")
    assert state.last_activity > before
    feed = await ui.websocket()
    for kind, counts in (("ping", False), ("activity", True)):
        before = state.last_activity
        if kind == "activity":
            await feed.ws.send_json({"type": "activity"})
        await feed.ws.send_json({"type": "ping"})  # frames are read in order: after its pong...
        await feed.wait_for(lambda e: e["type"] == "pong")
        assert (state.last_activity > before) is counts, kind  # ... the one before it counted

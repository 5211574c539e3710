"""Two `flame directory serve` processes on one PostgreSQL database, one certificate, as behind a
load balancer (README, "Deploying the directory"): enrollment, invites, presence pushes and
failover behave as with one process."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from flame.devtools.cluster import env_of
from flame.devtools.postgres import Postgres
from flame.devtools.procs import Proc, directory_proc
from flame.directory import admin
from flame.directory.keylog import KEY_NAME as LOG_KEY_NAME
from flame.directory.keylog import ensure_log_key
from flame.net.tls import CERT_NAME, KEY_NAME, ensure_certificate
from tests.cluster import Cluster, services_of
from tests.directory.conftest import new_database
from tests.e2e.test_directory import enroll_body, post_enroll
from tests.e2e.test_directory_push import SLOW_POLL, presence_event, signed_get, subscribed


async def start_pair(cluster: Cluster, dsn: str) -> tuple[Proc, Proc]:
    """Directory processes `dir-a` and `dir-b` sharing `dsn`, one certificate and one log key."""
    first = cluster.root / "dir-a"
    ensure_certificate(first)
    ensure_log_key(first)  # and one key log key (README)
    second = cluster.root / "dir-b"
    second.mkdir(mode=0o700)
    for name in (CERT_NAME, KEY_NAME, LOG_KEY_NAME):
        shutil.copy2(first / name, second / name)
    env = cluster.process_env(
        env_of(
            {
                "directory.database": dsn,
                "directory.presence_ttl_s": 60.0,
                "directory.rate_per_address": 10_000.0,
                "directory.burst_per_address": 10_000,
                "directory.rate_per_user": 1_000.0,
                "directory.burst_per_user": 1_000,
            }
        )
    )
    procs = (directory_proc(cluster.root, env=env, name="dir-a"),
             directory_proc(cluster.root, env=env, name="dir-b"))  # fmt: skip
    for proc in procs:
        await proc.start()
    cluster.directory_proc = procs[0]  # the cluster's enrollments pin its certificate
    return procs


@pytest.fixture
async def pair(cluster: Cluster, postgres_server: Postgres) -> AsyncIterator[tuple[Proc, Proc]]:
    a, b = await start_pair(cluster, await new_database(postgres_server))
    try:
        yield a, b
    finally:
        await b.stop()


async def test_enrollment_invites_and_pushes_are_shared(
    cluster: Cluster, pair: tuple[Proc, Proc]
) -> None:
    a, b = pair
    assert a.tls == b.tls  # one certificate, so one pin serves both
    alice = await cluster.add_user("alice", directory_url=a.url, **SLOW_POLL)
    bob = await cluster.add_user("bob", directory_url=b.url)
    # Enrolled at A, known at B.
    found = await services_of(bob).contacts.find("alice")
    assert found is not None
    # An invite made at A's admin socket, spent at B, is spent at A too.
    reply = await admin.admin_call(
        a.folder, "POST", "/invite", {"username": "carol", "rekey": False, "ttl_s": 600}
    )
    assert reply is not None
    code = str(reply["code"])
    status, _ = await post_enroll(cluster, {**enroll_body("carol", code)}, url=b.url)
    assert status == 201
    status, body = await post_enroll(cluster, enroll_body("carol", code), url=a.url)
    assert (status, body["error"]) == (403, "invite_used")
    # bob reports to B; alice, subscribed at A and polling every 10 minutes, sees it within 1 s.
    await subscribed(alice)
    await services_of(alice).directory_sync.sync_once()
    alice_ui = await cluster.ui("alice")
    feed = await alice_ui.websocket()
    await alice_ui.wait_status(feed, "bob", "online")
    bob_ui = await cluster.ui("bob")
    await bob_ui.put("/ui/api/status", {"status": "busy"})
    await feed.wait_for(presence_event("bob", "busy"), timeout=1.0)


async def test_kill_9_of_one_process_daemons_fail_over_and_lose_nothing(
    cluster: Cluster, pair: tuple[Proc, Proc]
) -> None:
    a, b = pair
    both = {"directory_alternates": f"{a.url},{b.url}"}
    alice = await cluster.add_user("alice", directory_url=a.url, **both, **SLOW_POLL)
    await cluster.add_user("bob", directory_url=a.url, **both)
    await subscribed(alice)
    await services_of(alice).directory_sync.sync_once()  # bob is known; the rest is pushed
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    await alice_ui.wait_status(alice_feed, "bob", "online")
    await bob_ui.wait_status(bob_feed, "alice", "online")
    sent = [await alice_ui.send("bob", f"before {i}") for i in range(3)]

    await a.kill()
    sent += [await alice_ui.send("bob", f"after {i}") for i in range(3)]
    sent += [await bob_ui.send("alice", "and back")]
    # Presence still flows, pushed through B (alice polls every 10 minutes): she resubscribed
    # there. Her subscription may still be coming back, so the wait is longer than a push.
    await bob_ui.put("/ui/api/status", {"status": "away"})
    await alice_feed.wait_for(presence_event("bob", "away"), timeout=15)
    for message in sent:
        back = message["text"] == "and back"
        receiver, feed = (alice_ui, alice_feed) if back else (bob_ui, bob_feed)
        if not [m for m in await receiver.messages("bob" if back else "alice")
                if m["id"] == message["id"]]:  # fmt: skip
            await feed.wait_for(arrived(message["id"]))
    texts = [m["text"] for m in await bob_ui.messages("alice")]
    assert sorted(t for t in texts if t != "and back") == sorted(m["text"] for m in sent[:6])
    assert len(texts) == len(set(texts)) == 7  # each exactly once


def arrived(message_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "message" and e["message"]["id"] == message_id


async def test_a_postgres_outage_is_503_with_a_reason_and_daemons_carry_on(
    cluster: Cluster, postgres_server: Postgres
) -> None:
    await cluster.start_directory(ttl_s=60.0, database=await new_database(postgres_server))
    alice = await cluster.add_user("alice")
    await cluster.add_user("bob")
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    await alice_ui.wait_status(feed, "bob", "online")
    postgres_server.halt()
    try:
        status, body = await signed_get(cluster, alice, "/dir/v1/users")
        assert (status, body["error"]) == (503, "database_unavailable")
        assert "database" in str(body["message"])
        await feed.wait_for(lambda e: e["type"] == "directory" and e["state"] == "degraded")
        sent = await alice_ui.send("bob", "the database is down, we are not")
        # It arrives, if need be after a retry the answers' Retry-After set (once, in a full
        # run on a loaded machine, not within 10 s).
        await bob_feed.wait_for(arrived(sent["id"]), timeout=30)
    finally:
        postgres_server.start()
    await feed.wait_for(lambda e: e["type"] == "directory" and e["state"] == "ok", timeout=20)

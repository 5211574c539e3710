"""The key log (PROTOCOL.md §18) with a real directory and real daemons: a rekey is logged and the
rekeyed user's own daemon raises the alarm; keys the log does not hold are never pinned, and
keys that came while the log could not be read are pinned once it can; a log
that shrinks or is rewritten is refused; a directory that shows two daemons different logs is
caught when those daemons talk. The directory's operator is the attacker throughout: what the
tests do to the directory's database is what its operator can do."""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from flame.core.crypto import Identity, fingerprint
from flame.core.keylog import PAGE_MAX
from flame.devtools.chaos.proxy import FaultProxy
from flame.directory.app import DirectoryServer
from flame.directory.sqlite_store import SqliteStore
from flame.services.account import find_account, open_account
from flame.store import keylog as keylog_store
from flame.store.keystore import delete_meta
from tests.cluster import PASSWORD, Cluster, Feed, UiClient, eventually, services_of

ALARM_LINE = "key log alarm"


def expect_alarms(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The alarms logged (as errors, on purpose): marked as asked for, and their kinds."""
    kinds = []
    for record in caplog.get_records("call"):
        if ALARM_LINE in record.getMessage():
            record.expected = True
            kinds.append(record.getMessage().split("(", 1)[1].split(")", 1)[0])
    return kinds


async def log_size(ui: UiClient) -> int | None:
    _, view = await ui.get("/ui/api/keylog")
    size: int | None = view["size"]
    return size


async def alarm(feed: Feed, kind: str) -> dict[str, Any]:
    event = await feed.wait_for(lambda e: e["type"] == "key_log_alarm", timeout=20)
    assert event["alarm"]["kind"] == kind, event
    found: dict[str, Any] = event["alarm"]
    return found


async def fork_alarm(feed: Feed, naming: str) -> dict[str, Any]:
    """The next fork alarm about the head `naming`'s daemon showed (other alarms are passed)."""
    event = await feed.wait_for(
        lambda e: (
            e["type"] == "key_log_alarm"
            and e["alarm"]["kind"] == "fork"
            and f"showed {naming} " in e["alarm"]["message"]
        ),
        timeout=20,
    )
    found: dict[str, Any] = event["alarm"]
    return found


def directory_store(cluster: Cluster) -> SqliteStore:
    """The cluster's directory store (SQLite: these tests reach past it, into its file)."""
    assert cluster.directory is not None
    store = cluster.directory.store
    assert isinstance(store, SqliteStore)
    return store


async def test_a_rekey_is_logged_and_the_rekeyed_users_own_daemon_raises_an_alarm(
    trio: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    bob, alice = await trio.ui("bob"), await trio.ui("alice")
    bob_feed, alice_feed = await bob.websocket(), await alice.websocket()
    await eventually(lambda: log_size(bob), equals=3)
    await eventually(lambda: log_size(alice), equals=3)

    # The operator rekeys bob behind his back, for keys of someone else's making; bob's own
    # daemon runs on, and from now on the directory refuses everything it signs.
    store = directory_store(trio)
    code = await store.create_invite("bob", rekey=True, now=int(time.time()), ttl_s=600)
    await trio.enroll("bob", invite=code, folder="mallory-as-bob")
    impostor = find_account(trio.root / "mallory-as-bob")
    assert impostor is not None
    logged = await store.keylog_entries(0, PAGE_MAX)
    assert [(e.username, e.kind) for e in logged] == [
        ("alice", "enroll"), ("bob", "enroll"), ("carol", "enroll"), ("bob", "rekey"),
    ]  # fmt: skip

    raised = await alarm(bob_feed, "rekeyed")
    assert "new keys" in raised["message"] and "administrator" in raised["message"]
    _, view = await bob.get("/ui/api/keylog")
    assert (view["state"], view["size"]) == ("alarm", 4)
    assert [a["kind"] for a in view["alarms"]] == ["rekeyed"]
    assert expect_alarms(caplog) == ["rekeyed"]  # and in bob's log, once

    # alice had pinned bob: the change is parked, and his profile shows the history.
    await alice_feed.wait_for(lambda e: e["type"] == "key_change" and e["username"] == "bob")
    _, profile = await alice.get("/ui/api/profiles/bob")
    assert [k["kind"] for k in profile["key_history"]] == ["enroll", "rekey"]
    assert profile["key_history"][1]["fingerprint"] == fingerprint(impostor.identity_key)
    assert profile["key_changed_at"] == logged[3].ts
    _, mine = await alice.get("/ui/api/keylog")
    assert mine["state"] == "ok" and mine["alarms"] == []  # her own entries are hers

    # dave enrols only now: he pins the logged keys, and is shown that they are new.
    await trio.add_user("dave")
    dave = await trio.ui("dave")

    async def bob_for_dave() -> tuple[str, Any] | None:
        _, contacts = await dave.get("/ui/api/contacts")
        found = [c for c in contacts["contacts"] if c["username"] == "bob"]
        return None if not found else (found[0]["fingerprint"], found[0]["key_changed_at"])

    await eventually(bob_for_dave, equals=(fingerprint(impostor.identity_key), logged[3].ts))
    assert expect_alarms(caplog) == ["rekeyed"]


async def test_keys_the_log_does_not_hold_are_never_pinned(trio: Cluster) -> None:
    """The outside review's attack: the operator replaces carol's keys without an entry (the
    log's trigger dropped), so the listing serves keys that no log holds."""
    alice = await trio.ui("alice")
    await eventually(lambda: names_of(alice), equals={"bob", "carol"})
    carol_before = await contact(alice, "carol")
    db = directory_store(trio).db
    await db.execute("DROP TRIGGER keylog_rekeyed")
    await db.execute(
        "UPDATE users SET identity_key=?, x25519_key=?, x25519_sig=? WHERE username='carol'",
        keys_for("carol"),
    )
    await trio.add_user("dave")  # enrolled after it, so whoever lists dave lists the new carol
    dave = await trio.ui("dave")
    await eventually(lambda: log_size(dave), equals=4)
    await eventually(lambda: names_of(dave), equals={"alice", "bob"})  # carol: not pinned
    await eventually(lambda: names_of(alice), equals={"bob", "carol", "dave"})
    carol = await contact(alice, "carol")  # no key change parked: the pinned key stays
    assert (carol["fingerprint"], carol["key_changed"]) == (carol_before["fingerprint"], False)


async def test_a_new_user_whose_entry_came_while_the_log_was_unreadable_is_pinned_later(
    trio: Cluster,
) -> None:
    """alice's daemon cannot read the key log (its way to it refuses connections) when dave's
    entry is pushed: dave is not pinned then. Once the log can be read again, her daemon reads
    it and pins him, with no further change at the directory and no lookup of dave."""
    assert trio.directory is not None and trio.directory.parts is not None
    alice = await trio.ui("alice")
    await eventually(lambda: names_of(alice), equals={"bob", "carol"})
    services = services_of(trio.daemons["alice"])
    await eventually(lambda: log_size(alice), equals=3)
    assert services.directory_sync.subscribed.is_set()
    directory = services.keylog.directory
    port = int(directory.url.rsplit(":", 1)[1])
    route = FaultProxy("alice's way to the key log", port)
    await route.start()
    try:
        route.blocked = True  # connections refused; the subscription (its own) stays up
        services.keylog.directory = dataclasses.replace(directory, url=route.url)
        frames = services.directory_sync.frames
        await trio.enroll("dave")
        head = await trio.directory.parts.store.head()

        async def cursor() -> int:
            return services.directory_sync.cursor

        await eventually(cursor, equals=head)
        assert services.directory_sync.frames > frames  # dave's entry came, pushed
        assert "dave" not in await names_of(alice) and route.refused > 0
        assert "dave" in services.contacts.unlogged
        lookups = trio.directory.parts.user_lookups

        route.unblock()
        await eventually(lambda: names_of(alice), equals={"bob", "carol", "dave"})
        assert await log_size(alice) == 4 and services.contacts.unlogged == {}
        assert await trio.directory.parts.store.head() == head  # nothing changed meanwhile
        assert trio.directory.parts.user_lookups == lookups  # and nobody asked for dave
    finally:
        services.keylog.directory = directory
        await route.stop()


def keys_for(name: str) -> tuple[bytes, bytes, bytes]:
    """New keys for `name`, of the attacker's making (with a binding that verifies)."""
    attacker = Identity.generate()
    return attacker.identity_key, attacker.x25519_key, attacker.binding_signature(name)


async def contact(ui: UiClient, name: str) -> dict[str, Any]:
    _, contacts = await ui.get("/ui/api/contacts")
    found: dict[str, Any] = next(c for c in contacts["contacts"] if c["username"] == name)
    return found


async def names_of(ui: UiClient) -> set[str]:
    _, contacts = await ui.get("/ui/api/contacts")
    return {c["username"] for c in contacts["contacts"]}


async def restart_directory(cluster: Cluster, *edits: tuple[str, tuple[Any, ...]]) -> None:
    """Stop the directory, change its database by hand (its operator can: the append-only
    triggers go first), start it again on the same port: its log is read afresh."""
    directory = cluster.directory
    assert directory is not None and directory.listener is not None
    port = directory.listener.port
    await directory.stop()
    conn = sqlite3.connect(cluster.root / "directory" / "directory.db")
    try:
        conn.execute("DROP TRIGGER IF EXISTS keylog_no_update")
        conn.execute("DROP TRIGGER IF EXISTS keylog_no_delete")
        for sql, params in edits:
            conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()
    await cluster.start_directory(port=port)


async def test_a_truncated_or_rewritten_log_is_refused(
    trio: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await trio.ui("alice")
    feed = await alice.websocket()
    for name in ("alice", "bob", "carol"):  # each took the log of 3 (or it would see a fork)
        await eventually(functools.partial(log_size, await trio.ui(name)), equals=3)
    await eventually(lambda: names_of(alice), equals={"bob", "carol"})
    carol_before = await contact(alice, "carol")

    # The operator drops carol's entry: a log of 2 entries cannot extend alice's of 3.
    await restart_directory(trio, ("DELETE FROM keylog WHERE position = 2", ()))
    refused = await alarm(feed, "truncated")
    assert "shrank from 3 to 2" in refused["message"]

    # Then writes another carol in its place and serves her keys (which the log's trigger adds as
    # a rekey): a log that grew again, but not from the 3 entries alice took.
    keys = keys_for("carol")
    await restart_directory(
        trio,
        ("INSERT INTO keylog VALUES (2, 'carol', ?, ?, ?, 1700000000, 'enroll')", keys),
        ("UPDATE users SET identity_key=?, x25519_key=?, x25519_sig=? WHERE username='carol'",
         keys),
    )  # fmt: skip
    rewritten = await alarm(feed, "rewritten")
    assert "history was rewritten" in rewritten["message"]

    # alice keeps the log she checked, and carol's pinned key, with no key change to accept.
    _, view = await alice.get("/ui/api/keylog")
    assert view["size"] == 3 and [a["kind"] for a in view["alarms"]] == ["truncated", "rewritten"]
    carol = await contact(alice, "carol")
    assert (carol["fingerprint"], carol["key_changed"]) == (carol_before["fingerprint"], False)
    assert set(expect_alarms(caplog)) == {"rewritten", "truncated"}  # bob's and carol's too


async def copy_directory(cluster: Cluster, folder: Path) -> DirectoryServer:
    """A second directory process from a copy of the first one's folder (its database, taken
    while it runs, its certificate and its log key): what an operator who wants to show some
    users another log runs."""
    assert cluster.directory is not None
    source = cluster.root / "directory"
    folder.mkdir(mode=0o700)
    for name in ("tls-cert.pem", "tls-key.pem", "keylog-key.pem"):
        shutil.copy2(source / name, folder / name)
    with (
        sqlite3.connect(source / "directory.db") as src,
        sqlite3.connect(folder / "directory.db") as dst,
    ):
        src.backup(dst)
    src.close()
    dst.close()
    copy = DirectoryServer(cluster.directory.settings.model_copy(update={"port": 0}), folder)
    await copy.start()
    return copy


async def test_a_forked_log_is_caught_when_the_two_daemons_talk(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    first = await cluster.start_directory()
    assert first.listener is not None
    route = FaultProxy("bob's way to the directory", first.listener.port)  # an attacker's DNS
    await route.start()
    second: DirectoryServer | None = None
    try:
        await cluster.add_user("alice")
        await cluster.add_user("bob", directory_url=route.url)
        alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
        alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
        await alice.wait_status(alice_feed, "bob", "online")
        await eventually(lambda: log_size(bob), equals=2)
        await eventually(lambda: log_size(alice), equals=2)

        # From now on bob's directory calls reach a copy that logs other enrolments.
        second = await copy_directory(cluster, cluster.root / "second")
        assert second.listener is not None
        route.target_port = second.listener.port
        route.block()  # cut what is open: bob's next calls go to the copy
        route.unblock()
        await cluster.enroll("carol")  # at the first: alice's log
        await cluster.enroll("dave")
        await cluster.enroll("mallory", directory_url=second.url)  # at the copy: bob's
        await eventually(lambda: log_size(alice), equals=4)
        await eventually(lambda: log_size(bob), equals=3)
        # Each log, on its own, passes every check: no alarm but a fork can have been raised (and
        # one can: any call between the two daemons carries their heads, PROTOCOL.md §18.5).
        assert set(expect_alarms(caplog)) <= {"fork"}

        # alice writes to bob: her head (4 entries) and his (3) meet. The first directory's
        # proof from 3 to 4 does not fit bob's head: alice sees the fork (if a call in the
        # background had not shown it to her already: the feed has every alarm since it opened).
        sent = await alice.send("bob", "hello")
        await bob_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["id"] == sent["id"]
        )
        forked = await fork_alarm(alice_feed, naming="bob")
        assert re.search(r"of 3 and [34] entries", forked["message"]), forked["message"]

        # The copy logs one more: both heads have 4 entries now, with different roots.
        await cluster.enroll("erin", directory_url=second.url)
        await eventually(lambda: log_size(bob), equals=4)
        await bob.send("alice", "hi")
        # Bob checks alice's head against his log with a proof his directory can give: from his
        # head of 3 or of 4 entries, whichever he held when hers came.
        caught = await fork_alarm(bob_feed, naming="alice")
        assert re.search(r"of [34] and [34] entries", caught["message"]), caught["message"]
    finally:
        await route.stop()
        if second is not None:
            await second.stop()
    # Last: an alarm may still come while the directories stop (alice seeing bob's new head).
    assert set(expect_alarms(caplog)) == {"fork"}


async def test_an_account_made_before_the_log_pins_the_key_its_directory_names(
    cluster: Cluster,
) -> None:
    """PROTOCOL.md §18.1: a daemon enrolled before its directory kept a log has no log key; it
    pins the one the directory's hello names (over the pinned TLS) at its first read."""
    directory = await cluster.start_directory()
    assert directory.parts is not None
    settings = await cluster.enroll("alice")
    account = find_account(settings.daemon_data_dir())
    assert account is not None
    opened = await open_account(settings, account, PASSWORD)
    try:
        assert await keylog_store.load_log_key(opened.db) == directory.parts.log.public_key
        await delete_meta(opened.db, keylog_store.LOG_KEY)  # as an older flame init left it
    finally:
        await opened.db.close()
    node = await cluster.start_daemon("alice", settings=settings)
    alice = await cluster.ui("alice")
    await eventually(lambda: log_size(alice), equals=1)
    assert services_of(node).keylog.log_key == directory.parts.log.public_key

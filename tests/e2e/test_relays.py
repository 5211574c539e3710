"""Store-and-forward (PROTOCOL.md §13.3): offline recipients get their messages through relays,
exactly once, with receipts back to the sender; relays hold what they cannot read, within quotas,
and drop it only on the recipient's own signed acknowledgement."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import pytest

from flame.core.models import Deposit
from flame.core.relays import choose_relays, depositor_tag, make_ack
from flame.daemon import Daemon
from flame.errors import PeerRefused
from flame.store import messages as message_store
from flame.store import relay as relay_store
from tests.cluster import (
    Cluster,
    Feed,
    UiClient,
    eventually,
    identity_of,
    peer_endpoint,
    services_of,
)
from tests.e2e.test_peer_api import envelope_from

FAST_RELAY = {"relay_after_s": 0.2, "relay_retry_s": 0.5}


async def start_four(cluster: Cluster, **daemon: Any) -> None:
    await cluster.start_directory()
    for name in ("alice", "bob", "carol", "dave"):
        await cluster.add_user(name, **FAST_RELAY, **daemon)


async def held(node: Daemon) -> int:
    return await relay_store.held_count(services_of(node).ctx.db)


async def until_state(feed: Any, message_id: str, state: str) -> None:
    await feed.wait_for(
        lambda e: e["type"] == "message_state" and e["id"] == message_id and e["state"] == state,
        timeout=20,
    )


async def offline(cluster: Cluster, ui: UiClient, feed: Any, name: str) -> None:
    await ui.wait_status(feed, name, "online")
    await cluster.stop_daemon(name)
    await ui.wait_status(feed, name, "offline")


async def bob_away(cluster: Cluster) -> tuple[UiClient, Feed]:
    """Four users with fast relays; bob goes offline; alice's UI and its feed."""
    await start_four(cluster)
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    await offline(cluster, alice, feed, "bob")
    return alice, feed


async def test_offline_recipient_gets_it_once_via_relays_and_the_sender_its_receipt(
    cluster: Cluster,
) -> None:
    alice, feed = await bob_away(cluster)

    sent = await alice.send("bob", "while you were away")
    await until_state(feed, sent["id"], "relayed")
    relays = [cluster.daemons[n] for n in ("carol", "dave")]
    assert [await held(r) for r in relays] == [1, 1]  # k = 2: both hold a sealed copy

    bob_node = await cluster.start_daemon("bob")
    await until_state(feed, sent["id"], "delivered")
    texts = [
        m.body["text"]
        for m in await message_store.list_messages(
            services_of(bob_node).ctx.db, "alice", before=None, limit=10
        )
    ]
    assert texts == ["while you were away"]  # once, though three paths carried it
    for relay in relays:  # emptied on bob's signed acknowledgements
        await eventually(functools.partial(held, relay), equals=0)


async def test_the_sender_may_go_offline_after_depositing(cluster: Cluster) -> None:
    alice, feed = await bob_away(cluster)
    sent = await alice.send("bob", "I am leaving now")
    await until_state(feed, sent["id"], "relayed")
    await cluster.stop_daemon("alice")

    await cluster.start_daemon("bob")
    bob = await cluster.ui("bob")
    bob_feed = await bob.websocket()
    if not [m for m in await bob.messages("alice") if m["text"] == "I am leaving now"]:
        await bob_feed.wait_for(lambda e: e["type"] == "message", timeout=20)
    assert [m["text"] for m in await bob.messages("alice")] == ["I am leaving now"]

    # bob's delivered receipt waits (and is relayed) until alice is back.
    await cluster.start_daemon("alice")
    alice = await cluster.ui("alice")
    states = {m["id"]: m["state"] for m in await alice.messages("bob")}
    if states[sent["id"]] not in ("delivered", "read"):
        feed = await alice.websocket()
        await feed.wait_for(
            lambda e: (
                e["type"] == "message_state"
                and e["id"] == sent["id"]
                and e["state"] in ("delivered", "read")
            ),
            timeout=20,
        )


async def test_relays_refuse_over_quota_and_hand_nothing_to_others(cluster: Cluster) -> None:
    await cluster.start_directory()
    for name in ("alice", "bob", "carol"):
        await cluster.add_user(name, relay_max_per_depositor=2, relay_count=0)
    alice, bob, carol = (cluster.daemons[n] for n in ("alice", "bob", "carol"))
    assert carol.supervisor is not None
    await carol.supervisor.stop()  # carol answers as a relay but does not forward on her own
    await services_of(carol).directory_sync.sync_once()  # ... and knows who everyone is
    client = services_of(alice).client
    carol_peer = peer_endpoint(carol)
    envelopes = [envelope_from(alice, bob, f"m{i}", seq=i + 1) for i in range(3)]
    expiry = int(time.time()) + 3600
    result = await client.deposit(
        carol_peer, [Deposit(envelope=e, expires_at=expiry) for e in envelopes]
    )
    assert [r.status for r in result.results] == ["stored", "stored", "rejected"]
    assert result.results[2].error == "over_quota"
    # What carol keeps (PROTOCOL.md §13.3): for whom, the sealed envelope, its size and expiry,
    # and a tag that counts alice's share only while carol runs; never alice's name, nor when.
    relay = services_of(carol).relay
    rows = await services_of(carol).ctx.db.fetchall("SELECT * FROM relay_deposits")
    assert [set(row.keys()) for row in rows] == [
        {"recipient", "envelope_id", "depositor_tag", "envelope", "size", "expires_at"}
    ] * 2
    for row in rows:
        assert row["recipient"] == "bob" and row["expires_at"] == expiry
        assert row["depositor_tag"] == depositor_tag(relay.tag_key, "alice")
        assert "alice" not in " ".join(str(value) for value in tuple(row))
    with pytest.raises(PeerRefused) as refused:
        await client.deposit(carol_peer, [Deposit(envelope=envelopes[2], expires_at=expiry)])
    assert refused.value.http_status == 429 and refused.value.code == "over_quota"
    assert refused.value.retry_after_s is not None

    # Only the recipient may collect: alice asking gets nothing of bob's.
    collected = await client.collect(carol_peer)
    assert collected.envelopes == []
    got = await services_of(bob).client.collect(carol_peer)
    assert sorted(e.id for e in got.envelopes) == sorted(e.id for e in envelopes[:2])

    # A forged acknowledgement (alice signs "bob has them") deletes nothing.
    forged = make_ack(identity_of(alice), "carol", "bob", [envelopes[0].id], int(time.time()))
    with pytest.raises(PeerRefused) as bad:
        await services_of(alice).client.relay_ack(carol_peer, forged)
    assert bad.value.http_status == 403 and bad.value.code == "bad_ack"
    with pytest.raises(PeerRefused):  # bob sending an ack that alice signed: still refused
        await services_of(bob).client.relay_ack(carol_peer, forged)
    assert await held(carol) == 2
    genuine = make_ack(identity_of(bob), "carol", "bob", [envelopes[0].id], int(time.time()))
    await services_of(bob).client.relay_ack(carol_peer, genuine)
    assert await held(carol) == 1


async def test_a_restarted_relay_cannot_tell_who_left_what_it_holds(cluster: Cluster) -> None:
    """The depositor tag's key is new at every start (PROTOCOL.md §13.3): once carol's daemon
    restarts, the rows it kept name no one (no member's tag under the new key matches them) and
    count against no depositor's quota, only against their recipient's."""
    settings: dict[str, Any] = {"relay_max_per_depositor": 1, "relay_count": 0}
    await cluster.start_directory()
    for name in ("alice", "bob", "carol"):
        await cluster.add_user(name, **settings)
    alice, bob = cluster.daemons["alice"], cluster.daemons["bob"]
    await services_of(cluster.daemons["carol"]).directory_sync.sync_once()
    envelopes = [envelope_from(alice, bob, f"m{i}", seq=i + 1) for i in range(2)]
    await cluster.stop_daemon("bob")  # nobody to hand them over to
    expiry = int(time.time()) + 3600

    async def deposit(envelope: Any) -> str:
        result = await services_of(alice).client.deposit(
            peer_endpoint(cluster.daemons["carol"]), [Deposit(envelope=envelope, expires_at=expiry)]
        )
        return result.results[0].status

    async def tags() -> list[bytes]:
        rows = await services_of(cluster.daemons["carol"]).ctx.db.fetchall(
            "SELECT depositor_tag FROM relay_deposits ORDER BY rowid"
        )
        return [bytes(row["depositor_tag"]) for row in rows]

    assert await deposit(envelopes[0]) == "stored"
    with pytest.raises(PeerRefused) as refused:  # alice holds her one deposit here
        await deposit(envelopes[1])
    assert refused.value.code == "over_quota"
    before = await tags()
    old_key = services_of(cluster.daemons["carol"]).relay.tag_key
    assert before == [depositor_tag(old_key, "alice")]

    await cluster.stop_daemon("carol")
    carol = await cluster.start_daemon("carol", **settings)
    new_key = services_of(carol).relay.tag_key
    assert new_key != old_key and await tags() == before  # the row is kept, its tag unreadable
    assert before[0] not in {depositor_tag(new_key, n) for n in ("alice", "bob", "carol")}
    assert await deposit(envelopes[1]) == "stored"  # the old row counts for nobody's quota now
    after = await tags()
    assert after[0] == before[0] and after[1] == depositor_tag(new_key, "alice") != before[0]


async def test_an_expired_message_fails_with_the_reason(cluster: Cluster) -> None:
    await start_four(cluster, message_ttl_s=1.0, relay_ttl_s=1.0)
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    await offline(cluster, alice, feed, "bob")
    sent = await alice.send("bob", "too late")
    event = await feed.wait_for(
        lambda e: e["type"] == "message_state" and e["id"] == sent["id"] and e["state"] == "failed",
        timeout=20,
    )
    assert "expired" in event["error"]
    for relay in ("carol", "dave"):  # the relays drop their copies at the same time
        await eventually(functools.partial(held, cluster.daemons[relay]), equals=0)


def test_relays_are_chosen_deterministically_from_the_recipient() -> None:
    candidates = ["ana", "ben", "cy", "dee", "eli"]
    first = choose_relays("bob", candidates, 2)
    assert first == choose_relays("bob", list(reversed(candidates)), 2)
    assert len(first) == 2 and "bob" not in choose_relays("bob", [*candidates, "bob"], 9)
    # Losing a relay that was not chosen changes nothing.
    spare = next(c for c in candidates if c not in first)
    assert choose_relays("bob", [c for c in candidates if c != spare], 2) == first
    assert json.dumps(first)

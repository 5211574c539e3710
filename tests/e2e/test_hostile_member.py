"""One hostile member cannot knock a daemon offline (issue 9, "Availability"): a presence address
that does not parse, junk that names strangers, poisoned and junk relay deposits. Each attack is
made as a member would make it, with the member's real keys, against real daemons."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import random
import string
import time
from typing import Any

import aiohttp
import pytest

from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.envelope import new_message_id, seal, seal_bytes
from flame.core.models import Deposit, Envelope, Inner, TextBody
from flame.core.presence import make_presence
from flame.daemon import Daemon
from flame.errors import PeerRefused
from flame.net.replies import results_of
from flame.services.account import enroll_request
from flame.store import contacts as contact_store
from flame.store import outbox as outbox_store
from flame.store import relay as relay_store
from flame.store.outbox import OutboxEntry
from tests.cluster import (
    Cluster,
    directory_tls,
    eventually,
    identity_of,
    peer_endpoint,
    peer_tls,
    peer_url,
    services_of,
)

FAR_FUTURE = 1e12
PIN = hashlib.sha256(b"mallory's certificate").digest()


async def queued_for(cluster: Cluster, sender: str, peer: str) -> list[OutboxEntry]:
    """What `sender`'s outbox holds for `peer`, due or not."""
    db = services_of(cluster.daemons[sender]).ctx.db
    return await outbox_store.due_entries(db, peer, FAR_FUTURE, 100)


async def test_a_presence_address_that_does_not_parse_fails_that_peer_only_with_backoff(
    trio: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # mallory is a member (enrolled with her real key) who runs no daemon: only the record below
    # speaks for her. She signs it with her key; it is put into the directory's store as it is,
    # since a daemon must survive it whatever its directory checks (the directory is trusted for
    # availability only, PROTOCOL.md §1.1).
    mallory = Identity.generate()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=directory_tls(trio))) as s:
        body = enroll_request(mallory, "mallory", None).model_dump_json().encode()
        async with s.post(trio.directory_url + "/dir/v1/enroll", data=body) as response:
            assert response.status == 201
    record = make_presence(
        mallory, "mallory", "https://127.0.0.1:99999", "online", [1], int(time.time()), tls=PIN
    )
    assert trio.directory is not None and trio.directory.store is not None
    await trio.directory.store.put_presence(record, time.time() + 3600)

    alice, carol = await trio.ui("alice"), await trio.ui("carol")
    carol_feed = await carol.websocket()
    alice_services = services_of(trio.daemons["alice"])

    async def her_address() -> tuple[str | None, str] | None:
        contact = await alice_services.contacts.get("mallory")
        return None if contact is None else (contact.address, contact.status)

    # Readers skip such a record as they skip a bad signature (PROTOCOL.md §5.3): mallory is
    # known, offline, and has no address. One stored before that check (an older version's) is
    # still never dialled: the client refuses it, for her alone.
    await eventually(her_address, equals=(None, "offline"))
    await alice_services.ctx.db.execute(
        "UPDATE contacts SET address=?, tls=? WHERE username='mallory'", (record.address, PIN)
    )
    contact_store.forget_cached(alice_services.ctx.db)  # written behind the store's back
    await alice.send("mallory", "to the broken address")
    await alice.send("carol", "to a working peer")
    event = await carol_feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "to a working peer"  # other peers are still served

    async def tried_a_few_times() -> bool:
        return [e.attempts >= 4 for e in await queued_for(trio, "alice", "mallory")] == [True]

    await eventually(tried_a_few_times, equals=True)
    attempts = (await queued_for(trio, "alice", "mallory"))[0].attempts
    about_her = [
        r
        for r in caplog.records
        if r.name.startswith(("flame.delivery", "flame.tasks")) and "mallory" in r.getMessage()
    ]
    # One line per attempt, each persisted with its backoff: no spinning, no traceback.
    assert attempts <= len(about_her) <= attempts + 1, [r.getMessage() for r in about_her]
    assert all(r.levelno <= logging.WARNING and r.exc_info is None for r in about_her)
    assert "Flame does not dial mallory's daemon" in about_her[-1].getMessage()


async def test_junk_naming_strangers_costs_a_bounded_number_of_directory_lookups(
    cluster: Cluster,
) -> None:
    """Unsigned junk of a plausible form (headers well formed, meant for alice, fresh), each
    naming a new random user: alice may ask the directory about a few, never about each one, and
    her own allowance at the directory (its real per-user limit) stays hers."""
    # Reports and polls every 2 s (1 request/s of the 2 allowed); a presence is believed for 6 s
    # (at the directory and at its readers), so that bob does not look offline between reports.
    directory = await cluster.start_directory(rate_per_user=2.0, burst_per_user=60, ttl_s=6.0)
    slow = {
        "presence_interval_s": 2.0,
        "directory_sync_s": 2.0,
        "directory__presence_ttl_s": 6.0,
    }
    node = await cluster.add_user("alice", **slow)
    await cluster.add_user("bob", **slow)
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    await alice.wait_status(feed, "bob", "online")
    assert directory.parts is not None
    before, started = directory.parts.user_lookups, time.monotonic()
    url = f"{peer_url(node)}/api/v1/envelopes"
    rng = random.Random(9)

    def junk() -> dict[str, str]:
        name = "x" + "".join(rng.choice(string.ascii_lowercase) for _ in range(12))
        return {
            "Flame-User": name,
            "Flame-To": "alice",
            "Flame-Timestamp": str(int(time.time())),
            "Flame-Nonce": b64e(rng.randbytes(16)),
            "Flame-Signature": b64e(rng.randbytes(64)),
        }

    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), limit=20, ssl=peer_tls(node))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> tuple[int, str]:
            async with session.post(url, data=b'{"envelopes": []}', headers=junk()) as response:
                return response.status, (await response.json())["error"]

        answers = await asyncio.gather(*(one() for _ in range(400)))
    elapsed = time.monotonic() - started
    assert {status for status, _ in answers} <= {401, 429}, set(answers)
    limits = services_of(node).ctx.settings.limits
    allowed = limits.stranger_lookup_burst + limits.stranger_lookups_per_s * elapsed + 1
    assert directory.parts.user_lookups - before <= allowed
    # alice's own reports still get through, and she never looked degraded.
    await services_of(node).presence.report_once()
    assert services_of(node).contacts.directory_state == "ok"
    await alice.send("bob", "the feed reads up to here")
    await feed.wait_for(lambda e: e["type"] == "message")
    assert not [e for e in feed.seen if e["type"] == "directory" and e["state"] != "ok"]


# --- relays ---------------------------------------------------------------------------------------

RELAYING = {"relay_after_s": 0.2, "relay_retry_s": 0.5, "relay_count": 0}


async def relay_for_bob(cluster: Cluster, **daemon: Any) -> tuple[Daemon, Daemon, Daemon]:
    """alice (who deposits), carol (the relay) and bob, who is offline: what carol holds waits
    for him."""
    await cluster.start_directory()
    for name in ("alice", "bob", "carol", "dave"):
        await cluster.add_user(name, **RELAYING, **daemon)
    watcher = await cluster.ui("carol")
    feed = await watcher.websocket()
    await watcher.wait_status(feed, "bob", "online")
    await cluster.stop_daemon("bob")
    await watcher.wait_status(feed, "bob", "offline")
    return cluster.daemons["alice"], cluster.daemons["carol"], cluster.daemons["dave"]


def sealed_raw(
    author: Daemon, to_name: str, to_key: bytes, plaintext: bytes, id_: bytes
) -> Envelope:
    return seal_bytes(identity_of(author).exchange, to_name, to_key, id_, plaintext)


async def deposit(depositor: Daemon, relay: Daemon, envelopes: list[Envelope]) -> list[str]:
    """What `relay` answers `depositor` for each envelope: stored, duplicate or the refusal."""
    client = services_of(depositor).client
    deposits = [Deposit(envelope=e, expires_at=int(time.time()) + 3600) for e in envelopes]
    try:
        result = await client.deposit(peer_endpoint(relay), deposits)
    except PeerRefused as exc:
        partial = results_of(exc.payload)
        assert partial is not None, exc.message
        result = partial
    return [r.status if r.error is None else r.error for r in result.results]


async def held(node: Daemon) -> int:
    return await relay_store.held_count(services_of(node).ctx.db)


async def pinned_x25519(node: Daemon, name: str) -> bytes:
    """`name`'s X25519 key as `node` pinned it (what a sender seals to while `name` is away)."""
    contact = await services_of(node).contacts.get(name)
    assert contact is not None
    return contact.x25519_key


@pytest.mark.parametrize(
    "poison",
    [
        b'"kind": [], "body": {"text": "x"}',
        b'"kind": "text", "body": {"text": "x"}, "seq": 9223372036854775808',
        b'"kind": "text", "body": {"text": "x"}, "ts": 1' + b"0" * 311,
    ],
    ids=["kind_is_a_list", "seq_past_2_63", "ts_of_312_digits"],
)
async def test_a_poisoned_deposit_is_refused_alone_and_the_one_behind_it_arrives(
    cluster: Cluster, poison: bytes
) -> None:
    alice, carol, _ = await relay_for_bob(cluster)
    key = await pinned_x25519(carol, "bob")
    envelope_id = os.urandom(16)
    fields = b'"from": "alice", "to": "bob", "id": "%s", ' % b64e(envelope_id).encode()
    if b'"seq"' not in poison:
        fields += b'"seq": 1, '
    if b'"ts"' not in poison:
        fields += b'"ts": 1700000000000, '
    bad = sealed_raw(alice, "bob", key, b"{" + fields + poison + b"}", envelope_id)
    good_inner = Inner(
        from_="alice",
        to="bob",
        id=new_message_id(),
        seq=2,
        ts=int(time.time() * 1000),
        kind="text",
        body=TextBody(text="behind the poison"),
    )
    good = seal(identity_of(alice).exchange, "bob", key, good_inner)
    assert await deposit(alice, carol, [bad, good]) == ["stored", "stored"]  # sealed: unreadable

    bob = await cluster.start_daemon("bob")
    bob_ui = await cluster.ui("bob")
    bob_feed = await bob_ui.websocket()
    if not await bob_ui.messages("alice"):
        await bob_feed.wait_for(lambda e: e["type"] == "message")
    assert [m["text"] for m in await bob_ui.messages("alice")] == ["behind the poison"]
    # bob's signed acknowledgement names both: the relay drops the poison too, at once.
    await eventually(functools.partial(held, carol), equals=0)
    assert services_of(bob).inbox.decryptions >= 2


def junk_for(to: str, ct_bytes: int) -> Envelope:
    """An envelope of the right shape that nobody can open: what a hostile member can always make."""
    return Envelope(
        v=1,
        id=b64e(os.urandom(16)),
        to=to,
        eph=b64e(os.urandom(32)),
        sk=b64e(os.urandom(48)),
        ct=b64e(os.urandom(ct_bytes)),
    )


async def test_one_depositor_cannot_fill_a_recipients_quota_and_junk_is_dropped_on_ack(
    cluster: Cluster,
) -> None:
    """carol holds at most 8 deposits and 2 MB for bob; one depositor gets a quarter of that."""
    alice, carol, dave = await relay_for_bob(
        cluster, relay_max_per_recipient=8, relay_max_bytes_per_recipient=2_000_000
    )
    assert await deposit(alice, carol, [junk_for("bob", 600_000)]) == ["over_quota"]  # > 500 KB
    answers = await deposit(alice, carol, [junk_for("bob", 256 * k + 16) for k in range(1, 9)])
    assert answers == ["stored"] * 2 + ["over_quota"] * 6  # 2 of bob's 8
    key = await pinned_x25519(dave, "bob")
    inner = Inner(
        from_="dave",
        to="bob",
        id=new_message_id(),
        seq=1,
        ts=int(time.time() * 1000),
        kind="text",
        body=TextBody(text="from an honest member"),
    )
    honest = seal(identity_of(dave).exchange, "bob", key, inner)
    assert await deposit(dave, carol, [honest]) == ["stored"]
    assert await held(carol) == 3

    await cluster.start_daemon("bob")
    bob_ui = await cluster.ui("bob")
    bob_feed = await bob_ui.websocket()
    if not await bob_ui.messages("dave"):
        await bob_feed.wait_for(lambda e: e["type"] == "message")
    assert [m["text"] for m in await bob_ui.messages("dave")] == ["from an honest member"]
    # The junk did not open for bob; his signed acknowledgement says so and carol drops it.
    await eventually(functools.partial(held, carol), equals=0)

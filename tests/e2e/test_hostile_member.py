"""One hostile member cannot knock a daemon offline (issue 9, "Availability"): a presence address
that does not parse, junk that names strangers, poisoned and junk relay deposits. Each attack is
made as a member would make it, with the member's real keys, against real daemons."""

from __future__ import annotations

import asyncio
import logging
import random
import string
import time

import aiohttp
import pytest

from flame.core.encoding import b64e
from flame.core.presence import make_presence
from flame.directory import store as directory_store
from flame.store import outbox as outbox_store
from flame.store.outbox import OutboxEntry
from tests.cluster import Cluster, eventually, identity_of, services_of

FAR_FUTURE = 1e12


async def queued_for(cluster: Cluster, sender: str, peer: str) -> list[OutboxEntry]:
    """What `sender`'s outbox holds for `peer`, due or not."""
    db = services_of(cluster.daemons[sender]).ctx.db
    return await outbox_store.due_entries(db, peer, FAR_FUTURE, 100)


async def test_a_presence_address_that_does_not_parse_fails_that_peer_only_with_backoff(
    trio: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bob = trio.daemons["bob"]
    assert bob.supervisor is not None
    await bob.supervisor.stop()  # bob's own reports would replace the hostile one
    # bob signs a record with his real key. It is put into the directory's store as it is: a
    # daemon must survive it whatever its directory checks (the directory is trusted for
    # availability only, PROTOCOL.md §1.1).
    record = make_presence(
        identity_of(bob), "bob", "http://127.0.0.1:99999", "online", [1], int(time.time())
    )
    assert trio.directory is not None and trio.directory.db is not None
    await directory_store.put_presence(trio.directory.db, record, time.time() + 3600)

    alice, carol = await trio.ui("alice"), await trio.ui("carol")
    carol_feed = await carol.websocket()
    alice_contacts = services_of(trio.daemons["alice"]).contacts

    async def bobs_address() -> str | None:
        contact = await alice_contacts.get("bob")
        return None if contact is None else contact.address

    await eventually(bobs_address, equals=record.address)  # alice believes the signed record
    await alice.send("bob", "to the broken address")
    await alice.send("carol", "to a working peer")
    event = await carol_feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "to a working peer"  # other peers are still served

    async def tried_a_few_times() -> bool:
        return [e.attempts >= 4 for e in await queued_for(trio, "alice", "bob")] == [True]

    await eventually(tried_a_few_times, equals=True)
    attempts = (await queued_for(trio, "alice", "bob"))[0].attempts
    about_bob = [
        r
        for r in caplog.records
        if r.name.startswith(("flame.delivery", "flame.tasks")) and "bob" in r.getMessage()
    ]
    # One line per attempt, each persisted with its backoff: no spinning, no traceback.
    assert attempts <= len(about_bob) <= attempts + 1, [r.getMessage() for r in about_bob]
    assert all(r.levelno <= logging.WARNING and r.exc_info is None for r in about_bob)
    assert "not a valid URL" in about_bob[-1].getMessage()


async def test_junk_naming_strangers_costs_a_bounded_number_of_directory_lookups(
    cluster: Cluster,
) -> None:
    """Unsigned junk of a plausible form (headers well formed, meant for alice, fresh), each
    naming a new random user: alice may ask the directory about a few, never about each one, and
    her own allowance at the directory (its real per-user limit) stays hers."""
    directory = await cluster.start_directory(rate_per_user=2.0, burst_per_user=60)
    slow = {"presence_interval_s": 2.0, "directory_sync_s": 2.0}  # 1 request/s of 2 allowed
    node = await cluster.add_user("alice", **slow)
    await cluster.add_user("bob", **slow)
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    await alice.wait_status(feed, "bob", "online")
    assert directory.parts is not None
    before, started = directory.parts.user_lookups, time.monotonic()
    url = f"http://127.0.0.1:{node.peer_port}/api/v1/envelopes"
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

    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), limit=20)
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

"""One hostile member cannot knock a daemon offline (issue 9, "Availability"): a presence address
that does not parse, junk that names strangers, poisoned and junk relay deposits. Each attack is
made as a member would make it, with the member's real keys, against real daemons."""

from __future__ import annotations

import logging
import time

import pytest

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

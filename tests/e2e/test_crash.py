"""Crash safety with real processes: kill -9 of the sender after its UI accepted a message, and
of the recipient in the middle of a batch. Nothing lost, nothing twice (PROTOCOL.md §13). What each
daemon holds is read through its UI API, as the browser sees it."""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from flame.core.crypto import open_keystore
from flame.devtools.chaos.peers import INIT_ENV, cluster_env
from flame.devtools.chaos.report import count_log_lines
from flame.devtools.chaos.run import RESET_LINES
from flame.devtools.cluster import Cluster, Node, start_processes
from flame.devtools.ui import ToolFailed
from flame.store.db import connect
from flame.store.keystore import read_account
from tests.cluster import UiClient, eventually

PAGES = 100


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = await start_processes(tmp_path, ("alice", "bob"), cluster_env(), INIT_ENV)
    try:
        yield cluster
    finally:
        await cluster.close()


def ui(node: Node) -> UiClient:
    assert node.ui is not None, "logged in"
    return node.ui


async def send(node: Node, peer: str, text: str) -> str:
    return str((await ui(node).send(peer, text))["id"])


async def received(node: Node, author: str) -> list[tuple[str, int]]:
    messages = await ui(node).conversation(author, max_pages=PAGES)
    return [(m["id"], m["seq"]) for m in messages if m["direction"] == "in"]


async def states(node: Node, peer: str, ids: list[str]) -> Counter[str]:
    messages = await ui(node).conversation(peer, max_pages=PAGES)
    found = {m["id"]: m["state"] for m in messages}
    return Counter(found.get(i, "missing") for i in ids)


async def count_received(node: Node, author: str) -> int:
    return len(await received(node, author))


async def delivered_count(node: Node, peer: str, ids: list[str]) -> int:
    found = await states(node, peer, ids)
    return found["delivered"] + found["read"]


async def restart(node: Node) -> None:
    await node.proc.start()  # on the ports it had
    await node.login()  # its UI sessions died with it


async def test_kill_9_of_the_sender_after_accepting_still_delivers(pair: Cluster) -> None:
    alice, bob = pair.nodes["alice"], pair.nodes["bob"]
    await bob.proc.stop()  # bob is away: the message must wait in alice's outbox
    message_id = await send(alice, "bob", "accepted, then the power went")
    await alice.proc.kill()  # kill -9: no shutdown code runs at all
    await restart(alice)
    await restart(bob)
    await eventually(functools.partial(count_received, bob, "alice"), equals=1, timeout=30)
    assert [key for key, _ in await received(bob, "alice")] == [message_id]
    count = functools.partial(delivered_count, alice, "bob", [message_id])
    await eventually(count, equals=1, timeout=30)


async def test_kill_9_of_the_recipient_mid_batch_loses_and_doubles_nothing(
    pair: Cluster,
) -> None:
    alice, bob = pair.nodes["alice"], pair.nodes["bob"]
    total = 300
    sending = asyncio.gather(*(send(alice, "bob", f"burst {i}") for i in range(total)))
    await eventually(lambda: _some(bob), equals=True, timeout=30)
    await bob.proc.kill()  # while alice's batches are arriving
    ids = await sending  # alice's UI accepted every one, whatever happens to bob
    await restart(bob)
    await eventually(functools.partial(count_received, bob, "alice"), equals=total, timeout=60)
    rows = await received(bob, "alice")
    assert len({key for key, _ in rows}) == total  # nothing twice
    assert sorted(seq for _, seq in rows) == list(range(1, total + 1))  # nothing lost
    assert {key for key, _ in rows} == set(ids)
    count = functools.partial(delivered_count, alice, "bob", ids)
    await eventually(count, equals=total, timeout=60)


async def _some(node: Node) -> bool:
    return len(await received(node, "alice")) > 0


async def sent_ids(node: Node, peer: str) -> set[str]:
    messages = await ui(node).conversation(peer, max_pages=PAGES)
    return {m["id"] for m in messages if m["direction"] == "out"}


async def _opened_under_version_2(node: Node) -> int:
    """Messages this daemon opened from ratchet sessions (PROTOCOL.md §14.6), read from its
    (encrypted) file with the key its password unseals."""
    (path,) = node.proc.folder.rglob("flame.db")
    account = read_account(path.parent)
    assert account is not None
    db_key = open_keystore(account.sealed, account.username, node.password).db_key
    conn = connect(path, db_key)
    try:
        (sessions,) = conn.execute("SELECT count(*) FROM ratchet_sessions").fetchone()
        (opened,) = conn.execute("SELECT count(*) FROM ratchet_inbox").fetchone()
    finally:
        conn.close()
    assert sessions >= 1
    return int(opened)


async def test_kill_9_of_either_side_at_random_points_of_a_version_2_burst(pair: Cluster) -> None:
    """Both send at once while each is killed -9 at random moments (seeded): every message
    arrives once, in order, every delivered receipt comes back, and all of it went under version
    2 sessions: no state was lost or persisted ahead of its message (§14.6)."""
    alice, bob = pair.nodes["alice"], pair.nodes["bob"]
    await ui(alice).wait_online({"bob"}, 30)  # online: his prekeys are published (§14.3)
    await send(alice, "bob", "start the session")  # both sides settle on one session first
    await eventually(functools.partial(count_received, bob, "alice"), equals=1, timeout=30)
    rng = random.Random(20261201)
    total = 120
    ids: dict[str, list[str]] = {"alice": [], "bob": []}

    async def burst(node: Node, peer: str) -> None:
        for i in range(total):
            while True:
                try:
                    ids[node.name].append(await send(node, peer, f"{node.name} {i}"))
                    break
                except (OSError, ToolFailed, aiohttp.ClientError):
                    await asyncio.sleep(0.2)  # killed: the UI is back after the restart

    async def chaos() -> None:
        for _ in range(4):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            victim = rng.choice((alice, bob))
            await victim.proc.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await restart(victim)

    await asyncio.gather(burst(alice, "bob"), burst(bob, "alice"), chaos())
    for sender, receiver in ((alice, bob), (bob, alice)):
        # What the sender's UI accepted (a send retried after a kill may have been accepted
        # twice: two messages, both to arrive).
        sent = await sent_ids(sender, receiver.name)
        assert set(ids[sender.name]) <= sent and len(sent) >= total
        expected = len(sent)
        await eventually(
            functools.partial(count_received, receiver, sender.name), equals=expected, timeout=90
        )
        rows = await received(receiver, sender.name)
        assert len({key for key, _ in rows}) == expected  # nothing twice
        assert sorted(seq for _, seq in rows) == list(range(1, expected + 1))  # nothing lost
        assert {key for key, _ in rows} == sent
        count = functools.partial(delivered_count, sender, receiver.name, sorted(sent))
        await eventually(count, equals=expected, timeout=90)
    assert await _opened_under_version_2(bob) >= total
    assert await _opened_under_version_2(alice) >= total
    for node, peer in ((alice, "bob"), (bob, "alice")):  # each one as its recipient says
        messages = await ui(node).conversation(peer, max_pages=PAGES)
        assert {m["protocol_version"] for m in messages if m["direction"] == "in"} == {2}
    # No kill desynchronised the session: nothing failed to open, so nothing was healed by a
    # reset (§14.9), which would otherwise hide a lost or reused state.
    resets = {line: count_log_lines([alice.proc, bob.proc], line) for line in RESET_LINES}
    assert resets == dict.fromkeys(RESET_LINES, 0)

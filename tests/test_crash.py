"""Crash safety with real processes: kill -9 of the sender after its UI accepted a message, and
of the recipient in the middle of a batch. Nothing lost, nothing twice (PROTOCOL.md §13)."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flame.chaos import Cluster, Node, cluster_env, read_rows, start_cluster
from tests.cluster import eventually


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = await start_cluster(tmp_path, ("alice", "bob"), cluster_env())
    try:
        yield cluster
    finally:
        await cluster.stop()


async def send(node: Node, peer: str, text: str) -> str:
    assert node.session is not None
    async with node.session.post(
        f"/ui/api/conversations/{peer}/messages", json={"text": text}
    ) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["message"]["id"])


def received(node: Node, author: str) -> list[tuple[str, int]]:
    return [
        (row["id"], row["seq"])
        for row in read_rows(node.db_path)
        if row["direction"] == "in" and row["author"] == author
    ]


def states(node: Node, ids: list[str]) -> Counter[str]:
    rows = {row["id"]: row["state"] for row in read_rows(node.db_path)}
    return Counter(rows.get(i, "missing") for i in ids)


async def count_received(node: Node, author: str) -> int:
    return len(received(node, author))


async def delivered_count(node: Node, ids: list[str]) -> int:
    found = states(node, ids)
    return found["delivered"] + found["read"]


async def test_kill_9_of_the_sender_after_accepting_still_delivers(pair: Cluster) -> None:
    alice, bob = pair.nodes["alice"], pair.nodes["bob"]
    await bob.proc.stop()  # bob is away: the message must wait in alice's outbox
    message_id = await send(alice, "bob", "accepted, then the power went")
    await alice.proc.kill()  # kill -9: no shutdown code runs at all
    await alice.proc.start()
    await bob.proc.start()
    await eventually(functools.partial(count_received, bob, "alice"), equals=1, timeout=30)
    assert [key for key, _ in received(bob, "alice")] == [message_id]
    await eventually(functools.partial(delivered_count, alice, [message_id]), equals=1, timeout=30)


async def test_kill_9_of_the_recipient_mid_batch_loses_and_doubles_nothing(
    pair: Cluster,
) -> None:
    alice, bob = pair.nodes["alice"], pair.nodes["bob"]
    total = 300
    sending = asyncio.gather(*(send(alice, "bob", f"burst {i}") for i in range(total)))
    await eventually(lambda: _some(bob), equals=True, timeout=30)
    await bob.proc.kill()  # while alice's batches are arriving
    ids = await sending  # alice's UI accepted every one, whatever happens to bob
    await bob.proc.start()
    await eventually(functools.partial(count_received, bob, "alice"), equals=total, timeout=60)
    rows = received(bob, "alice")
    assert len({key for key, _ in rows}) == total  # nothing twice
    assert sorted(seq for _, seq in rows) == list(range(1, total + 1))  # nothing lost
    assert {key for key, _ in rows} == set(ids)
    await eventually(functools.partial(delivered_count, alice, ids), equals=total, timeout=60)


async def _some(node: Node) -> bool:
    return len(received(node, "alice")) > 0

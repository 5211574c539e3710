"""A group under kill -9, with real processes (PROTOCOL.md §19, §13): a member killed in the middle
of a burst to the group loses nothing and gets nothing twice, nor does the other member, and the
author sees every copy delivered. Read through the UI API, as the browser sees it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flame.devtools.chaos.peers import INIT_ENV, cluster_env
from flame.devtools.cluster import Cluster, Node, start_processes
from tests.cluster import UiClient, eventually
from tests.e2e.test_crash import restart

TOTAL = 120


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = await start_processes(tmp_path, ("alice", "bob", "carol"), cluster_env(), INIT_ENV)
    try:
        yield cluster
    finally:
        await cluster.close()


def ui(node: Node) -> UiClient:
    assert node.ui is not None, "logged in"
    return node.ui


async def page(node: Node, gid: str) -> list[dict[str, Any]]:
    status, reply = await ui(node).get(f"/ui/api/groups/{gid}/messages", {"limit": "200"})
    return list(reply["messages"]) if status == 200 else []


async def count(node: Node, gid: str) -> int:
    return len(await page(node, gid))


async def delivered_everywhere(node: Node, gid: str) -> int:
    return sum(1 for m in await page(node, gid) if m["delivered"] == m["recipients"] == 2)


async def test_kill_9_of_a_member_mid_burst_loses_and_doubles_nothing(three: Cluster) -> None:
    alice, bob, carol = (three.nodes[n] for n in ("alice", "bob", "carol"))
    await ui(alice).wait_online({"bob", "carol"}, 30)
    status, reply = await ui(alice).post(
        "/ui/api/groups", {"name": "Deal team", "members": ["bob", "carol"], "picture": None}
    )
    assert status == 201, reply
    gid = reply["group"]["id"]
    for member in (bob, carol):
        await eventually(lambda m=member: _holds(m, gid), equals=True, timeout=30)  # type: ignore[misc]

    async def post(i: int) -> str:
        status, reply = await ui(alice).post(f"/ui/api/groups/{gid}/messages", {"text": f"m{i}"})
        assert status == 201, reply
        return str(reply["message"]["id"])

    sending = asyncio.gather(*(post(i) for i in range(TOTAL)))
    await eventually(functools.partial(_some, bob, gid), equals=True, timeout=30)
    await bob.proc.kill()  # kill -9 while alice's copies are arriving
    await sending
    await restart(bob)
    for member in (bob, carol):
        await eventually(functools.partial(count, member, gid), equals=TOTAL, timeout=60)
        rows = await page(member, gid)
        assert sorted(m["seq"] for m in rows) == list(range(1, TOTAL + 1))  # none lost, none twice
        assert len({m["id"] for m in rows}) == TOTAL
    done = functools.partial(delivered_everywhere, alice, gid)
    await eventually(done, equals=TOTAL, timeout=60)


async def _holds(node: Node, gid: str) -> bool:
    status, _ = await ui(node).get(f"/ui/api/groups/{gid}")
    return status == 200


async def _some(node: Node, gid: str) -> bool:
    return await count(node, gid) > 0

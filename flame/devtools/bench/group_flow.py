"""The bench's group delivery figures (PROTOCOL.md §19): a directory and a group's daemons as real
processes on loopback; latency from the author's UI send until the LAST member's WebSocket shows
the message (p50/p99), for each group size; and, for the first size, a burst's throughput:
messages per second delivered to every member. Driven through the UI APIs as browsers would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from flame.devtools.cluster import Cluster, Node, start_processes
from flame.devtools.stats import summary_ms
from flame.devtools.ui import ToolFailed

ONLINE_TIMEOUT_S = 60.0
MESSAGE_TIMEOUT_S = 30.0
WARMUP = 3
CONCURRENCY = 16


class GroupFeed:
    """One member's live feed: when each group message (by its text) arrived."""

    def __init__(self, node: Node) -> None:
        assert node.ui is not None, "log in first"
        self.node = node
        self.arrived: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        assert self.node.ui is not None
        self.ws = (await self.node.ui.websocket()).ws
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            now = time.perf_counter()
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(frame.data)
            if event.get("type") == "group_message" and event["message"]["direction"] == "in":
                text = event["message"]["text"]
                self.arrived.setdefault(text, now)
                waiter = self.waiters.pop(text, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(now)

    async def arrival(self, text: str) -> float:
        if text in self.arrived:
            return self.arrived[text]
        waiter = self.waiters.setdefault(text, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(waiter, MESSAGE_TIMEOUT_S)
        except TimeoutError as exc:
            raise ToolFailed(f"{self.node.name} did not get {text!r} in time.") from exc

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def _group_of(cluster: Cluster, names: tuple[str, ...]) -> str:
    author = cluster.nodes[names[0]].ui
    assert author is not None
    await author.wait_online(set(names[1:]), ONLINE_TIMEOUT_S)
    status, reply = await author.post(
        "/ui/api/groups", {"name": "Bench", "members": list(names[1:]), "picture": None}
    )
    if status != 201:
        raise ToolFailed(f"the group was not made: {status} {reply}")
    group_id = str(reply["group"]["id"])
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    for name in names[1:]:
        ui = cluster.nodes[name].ui
        assert ui is not None
        while (await ui.get(f"/ui/api/groups/{group_id}"))[0] != 200:
            if time.monotonic() > deadline:
                raise ToolFailed(f"{name} did not hold the group in time")
            await asyncio.sleep(0.1)
    return group_id


async def _send(cluster: Cluster, author: str, group_id: str, text: str) -> None:
    ui = cluster.nodes[author].ui
    assert ui is not None
    status, reply = await ui.post(f"/ui/api/groups/{group_id}/messages", {"text": text})
    if status != 201:
        raise ToolFailed(f"a group message was refused: {status} {reply}")


async def _measure(
    cluster: Cluster, names: tuple[str, ...], messages: int, burst: int
) -> dict[str, Any]:
    group_id = await _group_of(cluster, names)
    feeds = [GroupFeed(cluster.nodes[name]) for name in names[1:]]
    try:
        for feed in feeds:
            await feed.open()

        async def to_everyone(text: str) -> float:
            return max([await feed.arrival(text) for feed in feeds])

        for i in range(WARMUP):  # first sessions and connections: not part of the figures
            await _send(cluster, names[0], group_id, f"warmup {i}")
            await to_everyone(f"warmup {i}")
        latencies = []
        for i in range(messages):
            text = f"latency {i:06d}"
            begun = time.perf_counter()
            await _send(cluster, names[0], group_id, text)
            latencies.append(await to_everyone(text) - begun)
        figures: dict[str, Any] = {
            "members": len(names),
            "sent": messages,
            "to_last_ms": summary_ms(latencies),
        }
        if burst > 0:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(i: int) -> None:
                async with gate:
                    await _send(cluster, names[0], group_id, f"burst {i:06d}")

            begun = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(burst)))
            last = max([await to_everyone(f"burst {i:06d}") for i in range(burst)])
            figures["burst"] = {
                "sent": burst,
                "delivered_to_all_s": round(last - begun, 3),
                "per_s": round(burst / (last - begun), 1),
            }
        return figures
    finally:
        for feed in feeds:
            await feed.close()


async def measure_group_flow(
    root: Path,
    sizes: list[int],
    messages: int,
    burst: int,
    env: Mapping[str, str],
    init_env: Mapping[str, str],
) -> list[dict[str, Any]]:
    found = []
    for index, size in enumerate(sizes):
        names = tuple(f"m{i:02d}" for i in range(size))
        cluster = await start_processes(
            root / f"group-{size}", names, env, init_env, timeout_s=60, connections=CONCURRENCY + 8
        )
        try:
            found.append(await _measure(cluster, names, messages, burst if index == 0 else 0))
        except Exception:
            print(cluster.log_tails())
            raise
        finally:
            await cluster.close()
    return found


def group_flow_rows(figures: list[dict[str, Any]]) -> list[tuple[str, str]]:
    rows = [("group delivery", "author's UI send -> the last member's WebSocket")]
    for size in figures:
        ms = size["to_last_ms"]
        rows.append(
            (
                f"  {size['members']} members, {size['sent']} sequential",
                f"to the last: p50 {ms['p50']:.1f} ms, p99 {ms['p99']:.1f} ms",
            )
        )
        if "burst" in size:
            burst = size["burst"]
            rows.append(
                (
                    f"  {size['members']} members, burst of {burst['sent']}",
                    f"{burst['per_s']:,.0f} msg/s delivered to every member "
                    f"({burst['delivered_to_all_s']:.2f} s)",
                )
            )
    return rows

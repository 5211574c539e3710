"""What version 2 costs beside version 1 (PROTOCOL.md §14), measured so that the machine's other
work cancels out: both clusters stay up, and bursts alternate between them, v2 then v1, then v1
then v2, and so on. Each pair ran within seconds of each other under the same load; the figure is
the median of the pairs' ratios, with their range.
"""

from __future__ import annotations

import contextlib
import statistics
from typing import Any

from flame.devtools.bench.machine import cpu_meter
from flame.devtools.bench.messages import ONLINE_TIMEOUT_S, Tab, measure_throughput
from flame.devtools.cluster import Cluster

PAIRS = 12  # a median of 12 pairs moves less from run to run than one of 6 (about ±0.05 here)
# Each burst is `burst // BURST_PARTS` messages whatever the number of pairs (833 of 5,000).
BURST_PARTS = 6


async def _burst(
    tabs: tuple[Tab, Tab], cluster: Cluster, n: int, concurrency: int
) -> dict[str, Any]:
    alice, bob = tabs
    cpu: dict[str, float | None] = {}
    with cpu_meter({name: node.proc.pid for name, node in cluster.nodes.items()}, cpu):
        throughput, _ = await measure_throughput(alice, bob, n, concurrency)
    spent = sum(cpu.get(name) or 0.0 for name in ("alice", "bob"))
    return {
        "delivered_per_s": throughput["delivered_per_s"],
        "received": throughput["received_ws"],
        "cpu_ms_per_message": 1000 * spent / n,
    }


async def measure_interleaved(
    v2: Cluster, v1: Cluster, burst: int, concurrency: int, pairs: int = PAIRS
) -> dict[str, Any]:
    """`pairs` bursts on each cluster, alternating which goes first, each of `burst //
    BURST_PARTS` messages: shorter bursts would weigh each burst's start and end more, which both
    versions pay alike, and so read closer to 1."""
    n = max(1, burst // BURST_PARTS)
    async with contextlib.AsyncExitStack() as stack:
        tabs: dict[int, tuple[Tab, Tab]] = {}
        for version, cluster in ((2, v2), (1, v1)):
            alice, bob = Tab(cluster.nodes["alice"]), Tab(cluster.nodes["bob"])
            stack.push_async_callback(alice.close)
            stack.push_async_callback(bob.close)
            await alice.ui.wait_online({"bob"}, ONLINE_TIMEOUT_S)
            await bob.open_feed()
            await alice.open_feed()
            tabs[version] = (alice, bob)
        clusters = {2: v2, 1: v1}
        rounds: list[dict[str, Any]] = []
        for index in range(pairs):
            order = (2, 1) if index % 2 == 0 else (1, 2)
            got = {v: await _burst(tabs[v], clusters[v], n, concurrency) for v in order}
            rounds.append({"first": order[0], "v2": got[2], "v1": got[1]})
    throughput = [r["v2"]["delivered_per_s"] / r["v1"]["delivered_per_s"] for r in rounds]
    cpu = [
        r["v2"]["cpu_ms_per_message"] / r["v1"]["cpu_ms_per_message"]
        for r in rounds
        if r["v1"]["cpu_ms_per_message"] > 0
    ]
    return {
        "pairs": pairs,
        "messages_per_burst": n,
        "rounds": rounds,
        "throughput_ratio": _summary(throughput),
        "cpu_ratio": _summary(cpu),
        "received": sum(r["v2"]["received"] + r["v1"]["received"] for r in rounds),
        "expected": 2 * pairs * n,
    }


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    rounded = [round(v, 3) for v in values]
    return {"median": round(statistics.median(values), 3), "min": min(rounded), "max": max(rounded)}


def interleaved_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    out = [
        (
            f"  interleaved, {figures['pairs']} pairs",
            f"{figures['messages_per_burst']} messages per burst, v2 and v1 in turn",
        )
    ]
    for key, what in (("throughput_ratio", "delivered"), ("cpu_ratio", "daemon CPU per message")):
        s = figures[key]
        if s is not None:
            out.append(
                (
                    f"    {what} v2 / v1",
                    f"median {s['median']:.0%} (pairs {s['min']:.0%} to {s['max']:.0%})",
                )
            )
    return out

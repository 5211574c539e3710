"""Run the fuzzer: a directory and three members on loopback (in this process, real sockets, real
databases, real crypto), `requests` hostile requests over every route, then a check that honest
traffic still flows. Exit code 1 on any 5xx or any ERROR a server logged."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from flame.devtools.cluster import Cluster, cluster_context
from flame.devtools.fuzz.cases import ROUTES, Case, Member, World
from flame.devtools.fuzz.hostile import Hostile
from flame.devtools.ui import UiClient
from flame.services.registry import Services

MEMBERS = ("alice", "bob", "carol")
# The fuzzer measures the parsers, not the rate limits: lift them far above its own pace.
UNLIMITED: dict[str, Any] = {
    "limits__peer_rate_per_address": 1e6,
    "limits__peer_burst_per_address": 1_000_000,
    "limits__peer_rate_per_sender": 1e6,
    "limits__peer_burst_per_sender": 1_000_000,
    "limits__stranger_lookups_per_s": 1e3,
    "limits__stranger_lookup_burst": 1000,
    "relay_after_s": 0.5,
    "relay_retry_s": 1.0,
}


@dataclass
class Report:
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx: what was sent
    logged_errors: list[str] = field(default_factory=list)  # ERROR records of the servers
    transport_errors: int = 0  # the server closed a connection without an answer
    honest_traffic: bool = False

    @property
    def ok(self) -> bool:
        return not self.server_errors and not self.logged_errors and self.honest_traffic

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_route": dict(sorted(self.by_route.items())),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "server_errors": self.server_errors[:20],
            "logged_errors": self.logged_errors[:20],
            "transport_errors": self.transport_errors,
            "honest_traffic": self.honest_traffic,
        }


class ErrorLog(logging.Handler):
    """Every ERROR a Flame server logs while the fuzzer runs."""

    def __init__(self, report: Report) -> None:
        super().__init__(logging.ERROR)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        self.report.logged_errors.append(f"{record.name}: {record.getMessage()}")


def describe(case: Case, status: int | str) -> str:
    body = case.body[:160].decode("utf-8", "backslashreplace")
    return f"{status} {case.method} {case.url}: {body}"


async def send(session: aiohttp.ClientSession, case: Case, report: Report) -> None:
    report.by_route[case.route] += 1
    try:
        async with session.request(
            case.method, URL(case.url, encoded=True), data=case.body or None, headers=case.headers
        ) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        # No answer at all: as bad as a 5xx.
        report.transport_errors += 1
        report.by_status[0] += 1
        report.server_errors.append(describe(case, type(exc).__name__))
        return
    report.by_status[status] += 1
    if status >= 500:
        report.server_errors.append(describe(case, status))


async def fuzz(requests: int, seed: int, concurrency: int = 16) -> Report:
    report = Report()
    handler = ErrorLog(report)
    logging.getLogger("flame").addHandler(handler)
    try:
        async for cluster in cluster_context():
            await _fuzz_cluster(cluster, requests, seed, concurrency, report)
    finally:
        logging.getLogger("flame").removeHandler(handler)
    return report


async def _fuzz_cluster(
    cluster: Cluster, requests: int, seed: int, concurrency: int, report: Report
) -> None:
    directory = await cluster.start_directory()
    members = []
    for name in MEMBERS:
        node = await cluster.add_user(name, **UNLIMITED)
        services: Services | None = node.services
        assert services is not None
        members.append(Member(name, services.ctx.keys.identity(), node.peer_port))
    assert directory.listener is not None
    world = World(members, directory.listener.port, Hostile(seed))
    builders = [builder for builder, weight in ROUTES for _ in range(weight)]
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        slots = asyncio.Semaphore(concurrency)
        pending: set[asyncio.Task[None]] = set()

        async def one(case: Case) -> None:
            try:
                await send(session, case, report)
            finally:
                slots.release()

        for _ in range(requests):
            await slots.acquire()
            case = world.fuzz.pick(builders)(world)
            report.requests += 1
            task = asyncio.create_task(one(case))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    report.honest_traffic = await _still_talking(cluster)


async def _still_talking(cluster: Cluster) -> bool:
    """After the fuzz: alice writes to bob through the UI and bob's page gets it."""
    alice, bob = UiClient(cluster.daemons["alice"]), UiClient(cluster.daemons["bob"])
    try:
        await alice.login()
        await bob.login()
        feed = await bob.websocket()
        text = f"still here {random.random()}"
        await alice.send("bob", text)
        await feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["text"] == text, timeout=30
        )
        return True
    except (TimeoutError, AssertionError, aiohttp.ClientError):
        return False
    finally:
        await alice.close()
        await bob.close()


async def run_fuzz(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    started = time.monotonic()
    report = await fuzz(args.requests, seed, args.concurrency)
    elapsed = time.monotonic() - started
    result = {"seed": seed, "elapsed_s": round(elapsed, 1), **report.as_json()}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(report.by_status.items()))
    print(f"fuzz: {report.requests} requests in {elapsed:.1f} s (seed {seed}); {statuses}")
    for line in report.server_errors[:10] + report.logged_errors[:10]:
        print(f"fuzz: {line}", file=sys.stderr)
    if not report.honest_traffic:
        print("fuzz: honest traffic did not get through afterwards", file=sys.stderr)
    print("fuzz: ok" if report.ok else "fuzz: FAILED")
    return 0 if report.ok else 1

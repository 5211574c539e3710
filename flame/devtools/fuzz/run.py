"""Run the fuzzer: a directory and three members on loopback (in this process, real sockets, real
databases, real crypto), and a fourth member, mallory, who has no daemon: the fuzzer holds her keys
and her version 2 sessions. `requests` hostile requests over every route the two apps register,
version 1 and version 2 envelopes, signed and MAC'd; then a check that honest traffic still flows.
Exit code 1 on any 5xx, any ERROR a server logged, or a route left unfuzzed."""

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
from aiohttp import web
from yarl import URL

from flame.core.crypto import Identity
from flame.core.prekeys import PrekeyClaim, PrekeyRecord, verify_prekey
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.devtools.cluster import Cluster, cluster_context
from flame.devtools.fuzz.cases import ROUTES
from flame.devtools.fuzz.hostile import Hostile
from flame.devtools.fuzz.olm import Olm
from flame.devtools.fuzz.world import Case, Member, World
from flame.devtools.ui import UiClient
from flame.services.account import enroll_request
from flame.services.registry import Services
from flame.store import messages as message_store

MEMBERS = ("alice", "bob", "carol")
PREKEYS_PER_USER = 6  # claimed for mallory's sessions before the run (daemons publish 25)
CLAIM_WAIT_S = 20.0  # for a daemon that has just been unlocked to publish its first prekeys
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
    by_tag: Counter[str] = field(default_factory=Counter)  # "mac 2xx", "v2 4xx", ...
    server_errors: list[str] = field(default_factory=list)  # 5xx: what was sent
    logged_errors: list[str] = field(default_factory=list)  # ERROR records of the servers
    transport_errors: int = 0  # the server closed a connection without an answer
    registered: list[str] = field(default_factory=list)  # the routes the apps register
    v2_stored: int = 0  # mallory's messages the daemons opened (version 2 only) and stored
    honest_traffic: bool = False

    @property
    def unfuzzed(self) -> list[str]:
        return sorted(set(self.registered) - set(self.by_route))

    @property
    def ok(self) -> bool:
        return (
            not self.server_errors
            and not self.logged_errors
            and self.honest_traffic
            and not self.unfuzzed
            and set(self.by_route) <= set(self.registered)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_route": dict(sorted(self.by_route.items())),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_tag": dict(sorted(self.by_tag.items())),
            "registered": self.registered,
            "unfuzzed": self.unfuzzed,
            "v2_stored": self.v2_stored,
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
    for tag in case.tags:
        report.by_tag[f"{tag} {status // 100}xx"] += 1
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
    assert directory.listener is not None
    members = []
    for name in MEMBERS:
        node = await cluster.add_user(name, **UNLIMITED)
        services: Services | None = node.services
        assert services is not None
        members.append(Member(name, services.ctx.keys.identity(), node.peer_port))
    apps = [node.listeners[0].app for node in cluster.daemons.values()]
    report.registered = registered_routes(directory.listener.app, *apps)
    mallory = Member("mallory", Identity.generate(), 0)
    world = World(members, mallory, Olm(), directory.listener.port, Hostile(seed))
    builders = [builder for builder, weight in ROUTES for _ in range(weight)]
    # The fuzzer is anyone on the network: it speaks TLS to the listeners, trusting no pin.
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await enroll_mallory(session, world)
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
    for node in cluster.daemons.values():
        assert node.services is not None
        report.v2_stored += await message_store.count_messages(node.services.ctx.db, "mallory")
    report.honest_traffic = await _still_talking(cluster)


def registered_routes(*apps: web.Application) -> list[str]:
    """Every route the apps' routers hold, as the report names them: "GET /api/v1/hello"."""
    return sorted(
        {
            f"{route.method} {route.resource.canonical}"
            for app in apps
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
    )


async def enroll_mallory(session: aiohttp.ClientSession, world: World) -> None:
    """Enroll mallory (a member without a daemon) and claim prekeys of each daemon's user for her
    sessions; a daemon just unlocked publishes its first ones within moments (§14.3)."""
    mallory = world.mallory
    body = enroll_request(mallory.identity, mallory.name, None).model_dump_json().encode()
    url = f"{world.directory_url}/dir/v1/enroll"
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        if r.status != 201:
            raise RuntimeError(f"mallory was not enrolled: {r.status} {await r.text()}")
    for member in world.daemons:
        claimed: list[PrekeyRecord] = []
        deadline = time.monotonic() + CLAIM_WAIT_S
        while len(claimed) < PREKEYS_PER_USER:
            record = await claim_prekey(session, world, member.name)
            if record is not None and verify_prekey(record, member.identity.identity_key):
                claimed.append(record)
            elif time.monotonic() > deadline:
                raise RuntimeError(f"{member.name} published no prekeys in {CLAIM_WAIT_S} s")
            else:
                await asyncio.sleep(0.1)
        world.olm.add_prekeys(member.name, claimed)


async def claim_prekey(
    session: aiohttp.ClientSession, world: World, name: str
) -> PrekeyRecord | None:
    mallory, path = world.mallory, f"/dir/v1/prekeys/{name}/claim"
    url = URL(world.directory_url + path)
    host = f"{url.host}:{url.port}"
    headers = sign_request(
        mallory.identity,
        mallory.name,
        DIRECTORY_AUDIENCE,
        "POST",
        path,
        host,
        b"",
        int(time.time()),
    )
    async with session.post(url, headers=headers) as response:
        if response.status != 200:
            return None
        return PrekeyClaim.model_validate_json(await response.read()).prekey


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

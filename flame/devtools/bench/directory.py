"""The bench's directory figures (issue: the directory at company scale): with N enrolled users,
signed presence reports per second (each only keeping a record alive), unchanged polls per
second (a daemon that is up to date asks for what changed since its cursor; and the older
conditional GET that gets 304), delta syncs per second after 1% of the users changed, and the
delay of a status change pushed to M subscribers. Once for one SQLite process, once for two
processes on one PostgreSQL server (fsync on), the load spread over both."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from flame.core.crypto import Identity
from flame.core.models import Status
from flame.devtools.bench.dirload import (
    CLIENTS,
    Load,
    User,
    enroll_call,
    presence_call,
    signed,
    start_directories,
)
from flame.devtools.bench.loadgen import Check, LoadClients
from flame.devtools.bench.machine import machine_info
from flame.devtools.postgres import postgres
from flame.devtools.stats import print_rows, summary_ms

PUSHES = 20  # status changes timed to every subscriber
DELTA_POLLS = 2000


async def measure_backend(
    root: Path, users: int, subscribers: int, processes: int, database: str = ""
) -> dict[str, Any]:
    env = {"directory.database": database} if database else {}
    procs = await start_directories(root, processes, env)
    clients = LoadClients.start(CLIENTS)
    try:
        assert procs[0].tls is not None
        pids = [p.pid for p in procs if p.pid is not None]
        load = Load(clients, procs[0].tls, pids)
        connector = aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(procs[0].tls), limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await measure(session, load, [p.url for p in procs], users, subscribers)
    finally:
        clients.close()
        for proc in procs:
            await proc.stop()


async def measure(
    session: aiohttp.ClientSession, load: Load, urls: list[str], count: int, subscribers: int
) -> dict[str, Any]:
    """Each figure as requests per second, and (`_cpu_ms`) the directory processes' CPU per
    request; every phase's requests are signed before its clock starts."""
    people = [User(f"u{i:05d}", Identity.generate(), urls[i % len(urls)]) for i in range(count)]
    figures: dict[str, Any] = {"users": count, "processes": len(urls), "clients": CLIENTS}
    print(f"  enrolling {count:,} users ...", flush=True)
    await load.rate(figures, "enroll", [enroll_call(u) for u in people])
    now = int(time.time())
    first = [presence_call(u, "online", now) for u in people]
    await load.rate(figures, "publish", first)  # each a change
    again = [presence_call(u, "online", now + 1) for u in people]
    await load.rate(figures, "reports", again)

    head = await cursor_of(session, people[0])
    polls = [signed(u, "GET", f"/dir/v1/users?since={head}") for u in people]
    await load.rate(figures, "unchanged_polls", polls, empty)
    etag = await etag_of(session, people[0])
    conditional = [
        signed(u, "GET", "/dir/v1/users", headers={"If-None-Match": etag}) for u in people
    ]
    await load.rate(figures, "etag_304", conditional, not_modified)

    changed = people[::100] or people[:1]  # 1% of the users change their status
    await load.run([presence_call(u, "away", now + 2) for u in changed])
    askers = [people[i % count] for i in range(DELTA_POLLS)]
    deltas = [signed(u, "GET", f"/dir/v1/users?since={head}") for u in askers]
    figures["delta_entries"] = len(changed)
    await load.rate(figures, "delta_syncs", deltas, holding(len(changed)))
    print(f"  pushes to {subscribers:,} subscribers ...", flush=True)
    figures["subscribers"] = subscribers
    figures["push_ms"] = await push_delays(session, people, subscribers, now + 3)
    return figures


def empty(status: int, body: bytes) -> None:
    if status != 200 or json.loads(body)["users"]:
        raise RuntimeError(f"an unchanged poll answered {status} {body[:100]!r}")


def not_modified(status: int, body: bytes) -> None:
    if status != 304:
        raise RuntimeError(f"a conditional poll answered {status} {body[:100]!r}")


def holds(entries: int, status: int, body: bytes) -> None:
    if status != 200 or len(json.loads(body)["users"]) != entries:
        raise RuntimeError(f"a delta sync answered {status} {body[:100]!r}")


def holding(entries: int) -> Check:
    """The check of a delta sync of `entries` users (picklable: a client process runs it)."""
    return functools.partial(holds, entries)


async def cursor_of(session: aiohttp.ClientSession, user: User) -> int:
    call = signed(user, "GET", "/dir/v1/users?since=0")
    async with session.get(call.url, headers=call.headers) as answer:
        return int((await answer.json())["cursor"])


async def etag_of(session: aiohttp.ClientSession, user: User) -> str:
    call = signed(user, "GET", "/dir/v1/users")
    async with session.get(call.url, headers=call.headers) as answer:
        await answer.read()
        return answer.headers["ETag"]


async def push_delays(
    session: aiohttp.ClientSession, people: list[User], subscribers: int, ts: int
) -> dict[str, float]:
    """Open the subscriptions (spread over every process), then change one user's status at a
    time and time the frame that says so at each subscriber."""
    listeners = people[-subscribers:]
    seen: dict[tuple[str, str], list[float]] = {}
    sockets = []
    for user in listeners:
        call = signed(user, "GET", "/dir/v1/subscribe")
        sockets.append(await session.ws_connect(call.url, headers=call.headers, max_msg_size=0))

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            arrived = time.perf_counter()
            for entry in json.loads(message.data)["users"]:
                presence = entry["presence"]
                if presence is not None:
                    key = (entry["user"]["username"], presence["status"])
                    seen.setdefault(key, []).append(arrived)

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    delays: list[float] = []
    try:
        for i in range(PUSHES):
            user = people[i]
            status: Status = "busy"  # nobody was busy before: every one is a change
            seen.pop((user.name, status), None)
            change = presence_call(user, status, ts + i)
            sent = time.perf_counter()
            async with session.put(change.url, data=change.body, headers=change.headers) as answer:
                await answer.read()
            deadline = sent + 10.0
            while len(seen.get((user.name, status), [])) < subscribers:
                if time.perf_counter() > deadline:
                    raise RuntimeError(
                        f"a push reached {len(seen.get((user.name, status), []))} of {subscribers}"
                    )
                await asyncio.sleep(0.005)
            delays += [t - sent for t in seen[(user.name, status)]]
    finally:
        for ws in sockets:
            await ws.close()
        for task in readers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return summary_ms(delays)


BACKENDS = ("sqlite", "postgres")


async def directory_figures(
    root: Path, users: int, subscribers: int, backends: tuple[str, ...] = BACKENDS
) -> dict[str, Any]:
    """The figures of each back end named; one left out says so ("skipped")."""
    result: dict[str, Any] = {"sqlite": {"skipped": "not asked for (--directory-backends)"}}
    if "sqlite" in backends:
        print(f"Directory: SQLite, one process, {users:,} users ...", flush=True)
        result["sqlite"] = await measure_backend(root / "sqlite", users, subscribers, 1)
    if "postgres" not in backends:
        result["postgres"] = {"skipped": "not asked for (--directory-backends)"}
        return result
    print(f"Directory: PostgreSQL, two processes, {users:,} users ...", flush=True)
    try:
        with postgres(durable=True) as server:
            result["postgres"] = await measure_backend(
                root / "postgres", users, subscribers, 2, server.dsn()
            )
    except FileNotFoundError as exc:
        result["postgres"] = {"skipped": str(exc)}
    return result


async def run_directory_bench(
    json_path: Path, users: int, subscribers: int, backends: tuple[str, ...]
) -> int:
    """`bench --only directory`: these figures alone, printed and written as JSON."""
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flame-bench-") as tmp:
        figures = await directory_figures(Path(tmp), users, subscribers, backends)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "params": {"directory_users": users, "directory_subscribers": subscribers},
        "directory": figures,
        "total_s": round(time.perf_counter() - begun, 3),
    }
    print_rows("Flame bench: the directory alone", directory_rows(figures))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {json_path} (total {result['total_s']:.1f} s).")
    return 0


def cpu_text(f: dict[str, Any], name: str) -> str:
    """The directory's CPU per request of one figure, and the load client's (absent from older
    results)."""
    if f"{name}_cpu_ms" not in f:
        return ""
    return f", {f[name + '_cpu_ms']:.2f} ms CPU each (client {f[name + '_client_cpu_ms']:.2f})"


def directory_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name, label in (("sqlite", "SQLite, 1 process"), ("postgres", "PostgreSQL, 2 processes")):
        f = result[name]
        if "skipped" in f:
            rows.append((f"directory, {label}", f"skipped: {f['skipped']}"))
            continue
        push = f["push_ms"]
        first = f"first ones, each a change: {f['publish_per_s']:,.0f}/s"
        polls = (
            f"{f['unchanged_polls_per_s']:,.0f}/s by cursor{cpu_text(f, 'unchanged_polls')}; "
            f"{f['etag_304_per_s']:,.0f}/s as 304{cpu_text(f, 'etag_304')}"
        )
        rows += [
            (f"directory, {label}", f"{f['users']:,} users enrolled ({f['enroll_per_s']:,.0f}/s)"),
            (
                "  presence reports",
                f"{f['reports_per_s']:,.0f}/s{cpu_text(f, 'reports')} ({first})",
            ),
            ("  unchanged polls", polls),
            (
                "  delta syncs, 1% changed",
                f"{f['delta_syncs_per_s']:,.0f}/s ({f['delta_entries']} entries each"
                f"{cpu_text(f, 'delta_syncs')})",
            ),
            (
                f"  push to {f['subscribers']:,} subscribers",
                f"p50 {push['p50']:.1f} ms, p99 {push['p99']:.1f} ms",
            ),
        ]
    return rows

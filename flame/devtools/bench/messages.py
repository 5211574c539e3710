"""`flame bench`: a real directory and two daemons (alice, bob) as processes on loopback, driven
through their UI APIs as a browser would, measuring message latency and throughput; then search
over a large synthetic message store (bench_search.py).

Nothing here is imported by the daemon. Every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from flame.bench_files import measure_file_transfer
from flame.bench_files import table_rows as file_table_rows
from flame.bench_search import run_search_bench
from flame.cluster import Proc, daemon_proc, directory_proc, init_user, stoppable
from flame.errors import FlameError

CONCURRENCY = 32
WARMUP_MESSAGES = 10
TEXT_CHARS = 64
ONLINE_TIMEOUT_S = 30.0
MESSAGE_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 30.0
JSON_VERSION = 1

# Short intervals so that the cluster is up in seconds; cheap Argon2 at `flame init` only (the
# cost is stored with the keys). The user's own config file and data folders stay out of it.
DAEMON_ENV = {
    "FLAME_DAEMON_PRESENCE_INTERVAL_S": "1",
    "FLAME_DAEMON_DIRECTORY_SYNC_S": "0.5",
    "FLAME_DAEMON_RETRY_BASE_S": "0.1",
    "FLAME_DAEMON_RETRY_MAX_S": "2",
    "FLAME_DIRECTORY_PRESENCE_TTL_S": "10",
    # The bench measures the message path, not the rate limiter: its 500 back-to-back sends
    # are far beyond a person's pace (the limiter's own cost is a dictionary lookup).
    "FLAME_LIMITS_PEER_RATE_PER_SENDER": "100000",
    "FLAME_LIMITS_PEER_BURST_PER_SENDER": "100000",
    "FLAME_LIMITS_PEER_RATE_PER_ADDRESS": "100000",
    "FLAME_LIMITS_PEER_BURST_PER_ADDRESS": "100000",
    "FLAME_DIRECTORY_RATE_PER_USER": "1000",
    "FLAME_DIRECTORY_BURST_PER_USER": "1000",
}
INIT_ENV = {"FLAME_SECURITY_ARGON2_MEMORY_KIB": "8192", "FLAME_SECURITY_ARGON2_ITERATIONS": "1"}


class BenchFailed(FlameError):
    code = "bench_failed"


# --- figures ----------------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return 0.0
    position = fraction * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in seconds)
    return {
        "count": len(values),
        "min": round(values[0], 3) if values else 0.0,
        "mean": round(sum(values) / len(values), 3) if values else 0.0,
        "p50": round(percentile(values, 0.50), 3),
        "p90": round(percentile(values, 0.90), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(values[-1], 3) if values else 0.0,
    }


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the cluster ------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports the OS hands out on 127.0.0.1, all held at once so that none repeats."""
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@dataclass
class Node:
    name: str
    proc: Proc
    ui_url: str
    password: str
    db_path: Path


@dataclass
class Cluster:
    root: Path
    directory: Proc
    nodes: dict[str, Node] = field(default_factory=dict)

    def procs(self) -> list[Proc]:
        return [self.directory, *(n.proc for n in self.nodes.values())]

    async def stop(self) -> None:
        await asyncio.gather(*(n.proc.stop() for n in self.nodes.values()))
        await self.directory.stop()

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for proc in self.procs():
            with contextlib.suppress(OSError):
                tail = proc.log_path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {proc.name} ({proc.log_path}) ---\n" + "\n".join(tail))
        return "\n".join(out)


async def start_cluster(root: Path, names: tuple[str, ...]) -> Cluster:
    isolated = {"XDG_CONFIG_HOME": str(root / "config"), "XDG_DATA_HOME": str(root / "data")}
    env = {**DAEMON_ENV, **isolated}
    directory_port, *ports = free_ports(1 + 2 * len(names))
    directory_url = f"http://127.0.0.1:{directory_port}"
    cluster = Cluster(root, directory_proc(root, directory_port, "open", env))
    try:
        await cluster.directory.start()
        passwords = await asyncio.gather(
            *(init_user(root, name, directory_url, {**env, **INIT_ENV}) for name in names)
        )
        for index, (name, password) in enumerate(zip(names, passwords, strict=True)):
            peer_port, ui_port = ports[2 * index], ports[2 * index + 1]
            proc = daemon_proc(root, name, peer_port, ui_port, directory_url, env)
            cluster.nodes[name] = Node(
                name, proc, f"http://127.0.0.1:{ui_port}", password, root / name / "flame.db"
            )
        await asyncio.gather(*(n.proc.start() for n in cluster.nodes.values()))
    except BaseException as exc:
        if isinstance(exc, Exception):
            print(cluster.log_tails(), file=sys.stderr)
        await cluster.stop()
        if isinstance(exc, RuntimeError):
            raise BenchFailed(f"The cluster did not start: {exc}") from exc
        raise
    return cluster


# --- the browser's side -----------------------------------------------------------------------


class Ui:
    """One browser tab: session cookie, Origin header, and the live feed's arrival times."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.session = aiohttp.ClientSession(
            base_url=node.ui_url,
            headers={"Origin": node.ui_url},
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=CONCURRENCY + 8),
        )
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.arrived: dict[str, float] = {}  # id of an incoming message -> perf_counter()
        self.server_s: dict[str, float] = {}  # id -> receiver's received_at - author's sent_at
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.feed_closed = False

    async def login(self) -> None:
        async with self.session.post(
            "/ui/api/login", json={"password": self.node.password}
        ) as response:
            if response.status != 200:
                raise BenchFailed(
                    f"{self.node.name}: login answered {response.status}: {await response.text()}"
                )

    async def get(self, path: str) -> Any:
        async with self.session.get(path) as response:
            if response.status != 200:
                raise BenchFailed(
                    f"{self.node.name}: GET {path} answered {response.status}: "
                    f"{await response.text()}"
                )
            return await response.json()

    async def send(self, peer: str, text: str) -> str:
        async with self.session.post(
            f"/ui/api/conversations/{peer}/messages", json={"text": text}
        ) as response:
            if response.status != 201:
                raise BenchFailed(
                    f"{self.node.name}: sending answered {response.status}: {await response.text()}"
                )
            body = await response.json()
        return str(body["message"]["id"])

    async def wait_online(self, peer: str, timeout_s: float) -> float:
        started = time.perf_counter()
        deadline = started + timeout_s
        while time.perf_counter() < deadline:
            contacts = (await self.get("/ui/api/contacts"))["contacts"]
            if any(c["username"] == peer and c["status"] == "online" for c in contacts):
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
        raise BenchFailed(f"{self.node.name} did not see {peer} online within {timeout_s:.0f} s.")

    async def open_feed(self) -> None:
        self.ws = await self.session.ws_connect(
            "/ui/api/ws", origin=self.node.ui_url, max_msg_size=1 << 22
        )
        first = await self.ws.receive(timeout=10.0)
        if first.type != aiohttp.WSMsgType.TEXT or json.loads(first.data).get("type") != "hello":
            raise BenchFailed(f"{self.node.name}: the WebSocket did not say hello: {first!r}")
        self.reader = asyncio.create_task(self._read_feed(self.ws))

    async def _read_feed(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for frame in ws:
                now = time.perf_counter()
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(frame.data)
                if event.get("type") == "message" and event["message"]["direction"] == "in":
                    message = event["message"]
                    self.arrived.setdefault(message["id"], now)
                    if message.get("received_at") is not None:
                        self.server_s[message["id"]] = message["received_at"] - message["sent_at"]
                    waiter = self.waiters.pop(message["id"], None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(now)
        finally:
            self.feed_closed = True
            for waiter in self.waiters.values():
                if not waiter.done():
                    waiter.set_exception(BenchFailed(f"{self.node.name}'s WebSocket closed."))

    async def arrival(self, message_id: str, timeout_s: float) -> float:
        """When the feed delivered this message (perhaps before its POST even answered)."""
        if message_id in self.arrived:
            return self.arrived[message_id]
        if self.feed_closed:
            raise BenchFailed(f"{self.node.name}'s WebSocket closed.")
        waiter = self.waiters.setdefault(message_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError as exc:
            raise BenchFailed(
                f"{self.node.name} did not get message {message_id} within {timeout_s:.0f} s."
            ) from exc

    async def incoming_ids(self, peer: str, max_pages: int) -> set[str]:
        """Walk the conversation page by page, as the UI scrolls back; the incoming ids."""
        ids: set[str] = set()
        path = f"/ui/api/conversations/{peer}/messages"
        params = {"limit": "200"}
        for _ in range(max_pages):
            async with self.session.get(path, params=params) as response:
                if response.status != 200:
                    raise BenchFailed(
                        f"{self.node.name}: GET {path} answered "
                        f"{response.status}: {await response.text()}"
                    )
                page = await response.json()
            ids.update(m["id"] for m in page["messages"] if m["direction"] == "in")
            if page["next_before"] is None:
                return ids
            params["before"] = page["next_before"]
        raise BenchFailed(f"{self.node.name}: the conversation has more than {max_pages} pages.")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        await self.session.close()


def count_stored(db_path: Path, peer: str, ids: set[str]) -> int:
    """How many of `ids` a daemon's database holds as incoming from `peer`; opened read-only
    beside the running daemon (WAL lets a reader in without disturbing the writer)."""
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as conn:
        rows = conn.execute("SELECT id FROM messages WHERE peer=? AND direction='in'", (peer,))
        return len(ids & {row[0] for row in rows})


# --- the measurements -------------------------------------------------------------------------


def text_for(kind: str, index: int) -> str:
    head = f"{kind} {index:06d} "
    return head + "x" * max(0, TEXT_CHARS - len(head))


async def measure_latency(
    alice: Ui,
    bob: Ui,
    count: int,
    kind: str = "latency",
) -> dict[str, Any]:
    """One message at a time: from just before alice's POST until bob's feed delivers it."""
    samples: list[float] = []
    ids: list[str] = []
    for index in range(count):
        started = time.perf_counter()
        message_id = await alice.send("bob", text_for(kind, index))
        samples.append(await bob.arrival(message_id, MESSAGE_TIMEOUT_S) - started)
        ids.append(message_id)
    server = [bob.server_s[i] for i in ids if i in bob.server_s]
    return {
        "ms": summary_ms(samples),
        "sent": count,
        "received": len(samples),
        "server_ms": summary_ms(server),
    }


@contextlib.contextmanager
def cpu_meter(procs: dict[str, Proc], into: dict[str, float | None]) -> Iterator[None]:
    """CPU seconds each process (and this one) spent inside the block."""
    pids = {name: (p.process.pid if p.process else None) for name, p in procs.items()}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = time.process_time()
    yield
    for name, pid in pids.items():
        after, start = cpu_seconds(pid), before[name]
        into[name] = None if after is None or start is None else round(after - start, 3)
    into["bench_client"] = round(time.process_time() - own, 3)


async def measure_throughput(
    alice: Ui,
    bob: Ui,
    total: int,
    concurrency: int,
) -> tuple[dict[str, Any], set[str]]:
    """`total` POSTs with `concurrency` in flight; done when bob has every one. Returns the
    figures and the ids sent."""
    sent: list[str] = []
    post_s: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            sent.append(await alice.send("bob", text_for("burst", index)))
            post_s.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    accepted_at = time.perf_counter()
    ids = set(sent)
    deadline = accepted_at + max(60.0, total * 0.02)
    polled_db = False
    while time.perf_counter() < deadline:
        if ids.issubset(bob.arrived.keys()):
            break
        if bob.feed_closed:  # the feed fell behind and was closed: count in the database instead
            polled_db = True
            if await asyncio.to_thread(count_stored, bob.node.db_path, "alice", ids) == total:
                break
            await asyncio.sleep(0.05)
            continue
        await asyncio.sleep(0.005)
    else:
        raise BenchFailed(
            f"bob had {len(ids & bob.arrived.keys())} of {total} burst messages "
            f"after {time.perf_counter() - started:.0f} s."
        )
    received = [bob.arrived[i] for i in ids if i in bob.arrived]
    stored_at = time.perf_counter() if polled_db else max(received)
    return {
        "sent": total,
        "accepted": len(ids),
        "received_ws": len(received),
        "accept_s": round(accepted_at - started, 4),
        "deliver_s": round(stored_at - started, 4),
        "accept_per_s": round(total / (accepted_at - started), 1),
        "delivered_per_s": round(total / (stored_at - started), 1),
        "post_ms": summary_ms(post_s),
        "feed_fell_behind": polled_db,
    }, ids


# --- the command ------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    params, latency, burst = result["params"], result["latency"], result["throughput"]
    machine = result["machine"]
    ms = latency["ms"]
    rows = [
        (
            "machine",
            f"{machine['cpu_count']} CPU, Python {machine['python']}, {machine['platform']}",
        ),
        (
            "cluster up",
            f"{result['setup_s']:.2f} s (bob online for alice after {result['online_s']:.2f} s)",
        ),
        ("", ""),
        (f"latency, {latency['sent']} sequential", "alice POST -> bob WebSocket"),
        ("  p50 / p90 / p99", f"{ms['p50']:.2f} / {ms['p90']:.2f} / {ms['p99']:.2f} ms"),
        ("  min / mean / max", f"{ms['min']:.2f} / {ms['mean']:.2f} / {ms['max']:.2f} ms"),
        (
            "  daemon to daemon p50",
            f"{latency['server_ms']['p50']:.2f} ms (bob received_at - alice sent_at, ms clock)",
        ),
        ("", ""),
        (f"throughput, {burst['sent']} burst", f"{params['concurrency']} POSTs in flight"),
        ("  UI API accepted", f"{burst['accept_per_s']:,.0f} msg/s ({burst['accept_s']:.2f} s)"),
        (
            "  delivered to bob",
            f"{burst['delivered_per_s']:,.0f} msg/s "
            f"({burst['deliver_s']:.2f} s, first POST -> last stored)",
        ),
        ("  POST p50 / p99", f"{burst['post_ms']['p50']:.2f} / {burst['post_ms']['p99']:.2f} ms"),
        (
            "  counted on bob",
            f"WebSocket {burst['received_ws']}, database {burst['stored_db']}, "
            f"UI API {burst['stored_api']} (of {burst['sent']})",
        ),
        ("  CPU s in burst", ", ".join(f"{k} {v}" for k, v in result["cpu_s"].items())),
        ("", ""),
        *([*file_table_rows(result["file"]), ("", "")] if result["file"] else []),
        *search_rows(result["search"]),
        ("result", "ok" if result["ok"] else "MISMATCH: " + "; ".join(result["problems"])),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    print("Flame bench (loopback, real processes)")
    print("=" * 38)
    for label, value in rows:
        print(f"{label:<{width}}  {value}" if label or value else "")
    print(flush=True)


def search_figures(raw: dict[str, Any]) -> dict[str, Any]:
    """bench_search's raw times, summarised in milliseconds per order and kind of query."""
    figures = {key: value for key, value in raw.items() if key != "times_s"}
    for order, kinds in raw["times_s"].items():
        every = [t for samples in kinds.values() for t in samples]
        figures[f"{order}_ms"] = summary_ms(every)
        figures[f"{order}_by_kind_ms"] = {kind: summary_ms(t) for kind, t in kinds.items()}
    return figures


def search_rows(search: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        (
            f"search, {search['messages']:,} messages",
            f"{search['queries']} queries (Zipf words, s={search['zipf_s']}), 30 results each",
        ),
        ("  corpus built in", f"{search['build_s']:.0f} s (bulk insert, real schema and triggers)"),
        (
            "  FTS5 index on disk",
            f"{search['index_bytes'] / 1e6:.1f} MB (database {search['db_bytes'] / 1e6:.0f} MB)",
        ),
    ]
    for order in ("newest", "relevance"):
        ms = search[f"{order}_ms"]
        common = search[f"{order}_by_kind_ms"].get("common", ms)
        rows.append(
            (
                f"  {order} first p50 / p99",
                f"{ms['p50']:.2f} / {ms['p99']:.2f} ms "
                f"(common words: {common['p50']:.2f} / {common['p99']:.2f} ms)",
            )
        )
    rows.append(("", ""))
    return rows


async def measure(
    cluster: Cluster, messages: int, burst: int, concurrency: int, begun: float, file_mib: int = 0
) -> dict[str, Any]:
    alice, bob = Ui(cluster.nodes["alice"]), Ui(cluster.nodes["bob"])
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(alice.close)
        stack.push_async_callback(bob.close)
        await alice.login()
        await bob.login()
        online_s = await alice.wait_online("bob", ONLINE_TIMEOUT_S)
        setup_s = time.perf_counter() - begun
        await bob.open_feed()
        # Alice's tab is open too, as in real use: her daemon pushes each message she sends
        # and its state changes, and that work belongs in the figures.
        await alice.open_feed()
        # The first messages pay for key lookups and new connections; not part of the figures.
        await measure_latency(alice, bob, WARMUP_MESSAGES, "warmup")
        print(f"Latency: {messages} sequential messages ...", flush=True)
        latency = await measure_latency(alice, bob, messages)
        print(f"Throughput: a burst of {burst} messages ...", flush=True)
        procs = {name: node.proc for name, node in cluster.nodes.items()}
        cpu: dict[str, float | None] = {}
        with cpu_meter({**procs, "directory": cluster.directory}, cpu):
            throughput, burst_ids = await measure_throughput(alice, bob, burst, concurrency)
        # Cross-checks, after the fact: bob's database read-only, and his UI API page by page.
        throughput["stored_db"] = await asyncio.to_thread(
            count_stored, bob.node.db_path, "alice", burst_ids
        )
        pages = (WARMUP_MESSAGES + messages + burst) // 200 + 10
        throughput["stored_api"] = len(await bob.incoming_ids("alice", pages) & burst_ids)
        file_figure = None
        if file_mib > 0:
            print(f"File: {file_mib} MiB from alice to bob ...", flush=True)
            pids = {
                name: node.proc.process.pid if node.proc.process else None
                for name, node in cluster.nodes.items()
            }
            file_figure = await measure_file_transfer(alice, bob, pids, file_mib, cluster.root)
    return {
        "setup_s": round(setup_s, 3),
        "online_s": round(online_s, 3),
        "latency": latency,
        "throughput": throughput,
        "cpu_s": cpu,
        "file": file_figure,
    }


async def run_bench(args: argparse.Namespace) -> int:
    """`flame bench`. SIGTERM or SIGHUP stop it as Ctrl-C does: the processes it started are
    stopped before it returns (they run in sessions of their own, so no signal reaches them)."""
    return await stoppable("bench", _run_bench(args))


async def _run_bench(args: argparse.Namespace) -> int:
    messages = int(getattr(args, "messages", 500))
    burst = int(getattr(args, "burst", 5000))
    concurrency = int(getattr(args, "concurrency", CONCURRENCY))
    json_path = Path(getattr(args, "json", "bench-results.json"))
    search_messages = int(getattr(args, "search_messages", 1_000_000))
    file_mib = int(getattr(args, "file_mib", 1024))
    if messages < 1 or burst < 1 or concurrency < 1 or search_messages < 1:
        raise BenchFailed("--messages, --burst and --search-messages must be at least 1.")
    if file_mib < 0:
        raise BenchFailed("--file-mib must be 0 (no file figure) or more.")
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flame-bench-") as tmp:
        print(f"Starting a directory, alice and bob in {tmp} ...", flush=True)
        cluster = await start_cluster(Path(tmp), ("alice", "bob"))
        try:
            figures = await measure(cluster, messages, burst, concurrency, begun, file_mib)
        except Exception:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            await cluster.stop()
        print(f"Search: {search_messages:,} synthetic messages, 200 queries ...", flush=True)
        figures["search"] = search_figures(await run_search_bench(Path(tmp), search_messages))
    throughput, latency = figures["throughput"], figures["latency"]
    problems = [
        f"{name} counted {throughput[name]}"
        for name in ("accepted", "received_ws", "stored_db", "stored_api")
        if throughput[name] != burst
    ]
    if latency["received"] != messages:
        problems.append(f"latency received {latency['received']}")
    if figures["file"] is not None and not figures["file"]["sha256_match"]:
        problems.append("the file's SHA-256 at bob differs")
    result: dict[str, Any] = {
        "version": JSON_VERSION,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "params": {
            "messages": messages,
            "burst": burst,
            "search_messages": search_messages,
            "concurrency": concurrency,
            "warmup": WARMUP_MESSAGES,
            "text_chars": TEXT_CHARS,
            "file_mib": file_mib,
            "daemon_env": DAEMON_ENV,
            "init_env": INIT_ENV,
        },
        **figures,
        "total_s": round(time.perf_counter() - begun, 3),
        "ok": not problems,
        "problems": problems,
    }
    print_table(result)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {json_path} (total {result['total_s']:.1f} s).")
    return 0 if result["ok"] else 1

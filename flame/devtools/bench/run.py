"""`python -m flame.devtools bench` (`make bench`): a real directory and two daemons (alice, bob) as
processes on loopback, driven through their UI APIs as a browser would, for the message figures
(messages.py) and the file figure (files.py); then search over a large synthetic message store
(search.py). Prints a table and writes the JSON. Every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flame.devtools.bench.directory import directory_figures, directory_rows
from flame.devtools.bench.files import measure_file_transfer
from flame.devtools.bench.files import table_rows as file_table_rows
from flame.devtools.bench.goals import goal_rows, judge
from flame.devtools.bench.group_file import group_file_rows, measure_group_file
from flame.devtools.bench.group_flow import group_flow_rows, measure_group_flow
from flame.devtools.bench.groups import group_rows, measure_groups
from flame.devtools.bench.machine import cpu_meter, fsync_ms, loopback_rtt_ms, machine_info
from flame.devtools.bench.messages import (
    CONCURRENCY,
    ONLINE_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    TEXT_CHARS,
    WARMUP_MESSAGES,
    Tab,
    measure_latency,
    measure_throughput,
)
from flame.devtools.bench.prekeys import measure_prekeys, prekey_rows
from flame.devtools.bench.ratchet_cost import measure_ratchet_cost
from flame.devtools.bench.search import run_search_bench, search_figures, search_rows
from flame.devtools.bench.versions import interleaved_rows, measure_interleaved
from flame.devtools.cluster import Cluster, start_processes
from flame.devtools.stats import print_rows
from flame.devtools.ui import PAGE, ToolFailed

JSON_VERSION = 1
# The sizes of a full run (what the goals are judged on) and of `--quick` (about a minute).
FULL: dict[str, int | str] = {
    "messages": 500,
    "burst": 5000,
    "search_messages": 1_000_000,
    "file_mib": 1024,
    "directory_users": 10_000,
    "directory_subscribers": 1000,
    "group_sizes": "5,20",
    "group_messages": 100,
    "group_burst": 500,
    "group_file_mib": 256,
    "directory_backends": "sqlite,postgres",
}
QUICK: dict[str, int | str] = {
    "messages": 100,
    "burst": 600,
    "search_messages": 20_000,
    "file_mib": 64,
    "directory_users": 1000,
    "directory_subscribers": 100,
    "group_sizes": "5",
    "group_messages": 20,
    "group_burst": 60,
    "group_file_mib": 16,
    "directory_backends": "sqlite",
}

# Short intervals so that the cluster is up in seconds; cheap Argon2 at `flame init` only (the
# cost is stored with the keys).
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
    # Every daemon of the bench calls the directory from 127.0.0.1: twenty of them (the group
    # figure) are twenty addresses' worth of polls, reports and subscriptions from one.
    "FLAME_DIRECTORY_RATE_PER_ADDRESS": "100000",
    "FLAME_DIRECTORY_BURST_PER_ADDRESS": "100000",
    "FLAME_DIRECTORY_CONNECTIONS_PER_ADDRESS": "4096",
}
# Cheap Argon2 for a fast start: test-only, hence allow_weak_kdf (real accounts refuse it).
INIT_ENV = {
    "FLAME_SECURITY_ARGON2_MEMORY_KIB": "8192",
    "FLAME_SECURITY_ARGON2_ITERATIONS": "1",
    "FLAME_SECURITY_ALLOW_WEAK_KDF": "true",
}


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
            f"WebSocket {burst['received_ws']}, UI API {burst['stored_api']} (of {burst['sent']})",
        ),
        ("  CPU s in burst", ", ".join(f"{k} {v}" for k, v in result["cpu_s"].items())),
        ("", ""),
        *version_rows(result),
        ("", ""),
        *prekey_rows(result["prekeys"]),
        ("", ""),
        *directory_rows(result["directory"]),
        *group_rows(result["groups"]),
        *group_flow_rows(result["group_flow"]),
        ("", ""),
        *([*group_file_rows(result["group_file"]), ("", "")] if result["group_file"] else []),
        *([*file_table_rows(result["file"]), ("", "")] if result["file"] else []),
        *search_rows(result["search"]),
        ("", ""),
        *goal_rows(result["goals"]),
        ("result", "ok" if result["ok"] else "MISMATCH: " + "; ".join(result["problems"])),
    ]
    print_rows("Flame bench (loopback, real processes)", rows)


def version_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Version 2 (the figures above) beside a cluster pinned to version 1 (PROTOCOL.md §14)."""
    v1, v2 = result["version_1"], result
    ratio = v2["throughput"]["delivered_per_s"] / v1["throughput"]["delivered_per_s"]
    return [
        ("version 2 beside version 1", "same messages, a cluster with security.max_version = 1"),
        (
            "  latency p50 v2 / v1",
            f"{v2['latency']['ms']['p50']:.2f} / {v1['latency']['ms']['p50']:.2f} ms",
        ),
        (
            "  delivered v2 / v1",
            f"{v2['throughput']['delivered_per_s']:,.0f} / "
            f"{v1['throughput']['delivered_per_s']:,.0f} msg/s ({ratio:.0%} of version 1)",
        ),
        (
            "  daemon CPU per message v2 / v1",
            f"{cpu_ms(v2):.2f} / {cpu_ms(v1):.2f} ms (alice + bob, in the burst)",
        ),
        *interleaved_rows(result["versions_interleaved"]),
        *ratchet_rows(result["ratchet_cost"], cpu_ms(v1)),
    ]


def ratchet_rows(cost: dict[str, Any], v1_cpu_ms: float) -> list[tuple[str, str]]:
    """The ratchet's own CPU per message beside the daemons' CPU per message under version 1."""
    share = cost["added_us"] / (1000 * v1_cpu_ms) if v1_cpu_ms > 0 else 0.0
    return [
        (
            "  ratchet CPU per message",
            f"+{cost['added_us']:.0f} us (seal and open: v1 {cost['v1_us']:.0f} us, "
            f"v2 {cost['v2_us']:.0f} us), {share:.0%} of the v1 daemons' CPU per message",
        )
    ]


def cpu_ms(figures: dict[str, Any]) -> float:
    """Daemon CPU per message of a burst: less swayed than msg/s by other work on the machine."""
    spent = sum(figures["cpu_s"].get(name) or 0.0 for name in ("alice", "bob"))
    return 1000 * spent / int(figures["throughput"]["sent"])


async def measure_messages(
    cluster: Cluster, messages: int, burst: int, concurrency: int
) -> dict[str, Any]:
    """Only the message figures (latency, throughput), for the version 1 cluster."""
    alice, bob = Tab(cluster.nodes["alice"]), Tab(cluster.nodes["bob"])
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(alice.close)
        stack.push_async_callback(bob.close)
        await alice.ui.wait_online({"bob"}, ONLINE_TIMEOUT_S)
        await bob.open_feed()
        await alice.open_feed()
        await measure_latency(alice, bob, WARMUP_MESSAGES, "warmup")
        latency = await measure_latency(alice, bob, messages)
        cpu: dict[str, float | None] = {}
        with cpu_meter({name: node.proc.pid for name, node in cluster.nodes.items()}, cpu):
            throughput, _ = await measure_throughput(alice, bob, burst, concurrency)
    return {"latency": latency, "throughput": throughput, "cpu_s": cpu}


async def measure(
    cluster: Cluster, messages: int, burst: int, concurrency: int, begun: float, file_mib: int = 0
) -> dict[str, Any]:
    alice, bob = Tab(cluster.nodes["alice"]), Tab(cluster.nodes["bob"])
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(alice.close)
        stack.push_async_callback(bob.close)
        online_s = await alice.ui.wait_online({"bob"}, ONLINE_TIMEOUT_S)
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
        daemons = {name: node.proc.pid for name, node in cluster.nodes.items()}
        assert cluster.directory_proc is not None
        cpu: dict[str, float | None] = {}
        with cpu_meter({**daemons, "directory": cluster.directory_proc.pid}, cpu):
            throughput, burst_ids = await measure_throughput(alice, bob, burst, concurrency)
        # Cross-check, after the fact: bob's UI API, page by page.
        pages = (WARMUP_MESSAGES + messages + burst) // PAGE + 10
        throughput["stored_api"] = len(await bob.incoming_ids("alice", pages) & burst_ids)
        file_figure = None
        if file_mib > 0:
            print(f"File: {file_mib} MiB from alice to bob ...", flush=True)
            file_figure = await measure_file_transfer(alice, bob, daemons, file_mib, cluster.root)
    return {
        "setup_s": round(setup_s, 3),
        "online_s": round(online_s, 3),
        "latency": latency,
        "throughput": throughput,
        "cpu_s": cpu,
        "file": file_figure,
    }


def bench_sizes(args: argparse.Namespace) -> dict[str, int | str]:
    """The sizes of this run: a full run's, or `--quick`'s, and over them those given as flags."""
    sizes = {**(QUICK if getattr(args, "quick", False) else FULL)}
    sizes.update({k: v for k in FULL if (v := getattr(args, k, None)) is not None})
    return sizes


async def run_bench(args: argparse.Namespace) -> int:
    quick = bool(getattr(args, "quick", False))
    sizes = bench_sizes(args)
    messages, burst = int(sizes["messages"]), int(sizes["burst"])
    concurrency = int(getattr(args, "concurrency", CONCURRENCY))
    json_path = Path(getattr(args, "json", "bench-results.json"))
    search_messages, file_mib = int(sizes["search_messages"]), int(sizes["file_mib"])
    directory_users = int(sizes["directory_users"])
    subscribers = int(sizes["directory_subscribers"])
    backends = tuple(str(sizes["directory_backends"]).split(","))
    if not 1 <= subscribers <= directory_users:
        raise ToolFailed("--directory-subscribers must be from 1 to --directory-users.")
    group_sizes = [int(n) for n in str(sizes["group_sizes"]).split(",") if n]
    group_messages, group_burst = int(sizes["group_messages"]), int(sizes["group_burst"])
    group_file_mib = int(sizes["group_file_mib"])
    if group_file_mib < 0:
        raise ToolFailed("--group-file-mib must be 0 (no group file figure) or more.")
    if any(n < 2 for n in group_sizes) or group_messages < 1 or group_burst < 0:
        raise ToolFailed("--group-sizes are 2 or more, --group-messages at least 1.")
    if messages < 1 or burst < 1 or concurrency < 1 or search_messages < 1:
        raise ToolFailed("--messages, --burst and --search-messages must be at least 1.")
    if file_mib < 0:
        raise ToolFailed("--file-mib must be 0 (no file figure) or more.")
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flame-bench-") as tmp:
        print(f"Starting a directory, alice and bob in {tmp} ...", flush=True)
        cluster = await start_processes(
            Path(tmp),
            ("alice", "bob"),
            DAEMON_ENV,
            INIT_ENV,
            timeout_s=REQUEST_TIMEOUT_S,
            connections=concurrency + 8,
        )
        try:
            figures = await measure(cluster, messages, burst, concurrency, begun, file_mib)
            print(
                "Version 1: the same messages between daemons pinned to version 1 ...", flush=True
            )
            old = await start_processes(
                Path(tmp) / "v1",
                ("alice", "bob"),
                {**DAEMON_ENV, "FLAME_SECURITY_MAX_VERSION": "1"},
                INIT_ENV,
                timeout_s=REQUEST_TIMEOUT_S,
                connections=concurrency + 8,
            )
            try:
                figures["version_1"] = await measure_messages(old, messages, burst, concurrency)
                print("Version 2 and version 1 in turn, burst by burst ...", flush=True)
                figures["versions_interleaved"] = await measure_interleaved(
                    cluster, old, burst, concurrency
                )
            finally:
                await old.close()
        except Exception:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            await cluster.close()
        print(f"Groups of {group_sizes}: delivery to every member ...", flush=True)
        figures["group_flow"] = await measure_group_flow(
            Path(tmp) / "groups", group_sizes, group_messages, group_burst, DAEMON_ENV, INIT_ENV
        )
        figures["group_file"] = None
        if group_file_mib > 0:
            print(f"A {group_file_mib} MiB file to a group of 5 ...", flush=True)
            figures["group_file"] = await measure_group_file(
                Path(tmp) / "groups", 5, group_file_mib, DAEMON_ENV, INIT_ENV
            )
        print("Ratchet: what version 2 adds to each message, in CPU ...", flush=True)
        figures["ratchet_cost"] = measure_ratchet_cost(max(100, min(burst, 2000)), TEXT_CHARS)
        print("Prekeys: refills and claims at the directory ...", flush=True)
        figures["prekeys"] = await measure_prekeys(Path(tmp) / "prekeys")
        print("Groups: sealing one message for 5, 20 and 100 members ...", flush=True)
        figures["groups"] = measure_groups()
        directory_root = Path(tmp) / "directory-bench"
        figures["directory"] = await directory_figures(
            directory_root, directory_users, subscribers, backends
        )
        print(f"Search: {search_messages:,} synthetic messages, 200 queries ...", flush=True)
        figures["search"] = search_figures(await run_search_bench(Path(tmp), search_messages))
    throughput, latency = figures["throughput"], figures["latency"]
    problems = [
        f"{name} counted {throughput[name]}"
        for name in ("accepted", "received_ws", "stored_api")
        if throughput[name] != burst
    ]
    if latency["received"] != messages:
        problems.append(f"latency received {latency['received']}")
    old = figures["version_1"]
    if old["latency"]["received"] != messages or old["throughput"]["received_ws"] != burst:
        problems.append("version 1 did not deliver every message")
    turns = figures["versions_interleaved"]
    if turns["received"] != turns["expected"]:
        problems.append(f"interleaved bursts delivered {turns['received']} of {turns['expected']}")
    if figures["file"] is not None and not figures["file"]["sha256_match"]:
        problems.append("the file's SHA-256 at bob differs")
    if figures["group_file"] is not None and not figures["group_file"]["sha256_match"]:
        problems.append("the group file's SHA-256 differs at a member")
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
            "directory_users": directory_users,
            "directory_subscribers": subscribers,
            "group_sizes": group_sizes,
            "group_messages": group_messages,
            "group_burst": group_burst,
            "group_file_mib": group_file_mib,
            "quick": quick,
            "daemon_env": DAEMON_ENV,
            "init_env": INIT_ENV,
        },
        **figures,
        "total_s": round(time.perf_counter() - begun, 3),
        "ok": not problems,
        "problems": problems,
    }
    result["machine"]["loopback_rtt_ms"] = loopback_rtt_ms()
    result["machine"]["fsync_ms"] = fsync_ms(Path(tempfile.gettempdir()))
    result["goals"] = judge(result, quick)
    print_table(result)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {json_path} (total {result['total_s']:.1f} s).")
    return 0 if result["ok"] else 1

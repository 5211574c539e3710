"""`python -m flame.devtools {demo,bench,chaos,fuzz,screenshots}`: the dev tools' own entry point
(`make demo`, `make bench`, `make chaos`, `make fuzz`, `make screenshots`). Errors become one
line, as in `flame`'s."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from flame.cli import setup_logging
from flame.config import LOG_LEVELS
from flame.devtools.cluster import stoppable
from flame.errors import FlameError


def cmd_demo(args: argparse.Namespace) -> int:
    from flame.devtools.demo import run_demo

    return run(run_demo(Path(args.dir), fresh=args.fresh, base_port=args.base_port))


def cmd_bench(args: argparse.Namespace) -> int:
    from flame.devtools.bench.directory import BACKENDS, run_directory_bench
    from flame.devtools.bench.run import bench_sizes, run_bench
    from flame.devtools.ui import ToolFailed

    sizes = bench_sizes(args)
    backends = tuple(name for name in str(sizes["directory_backends"]).split(",") if name)
    if not backends or not set(backends) <= set(BACKENDS):
        raise ToolFailed(f"--directory-backends names some of {', '.join(BACKENDS)}.")
    if args.only == "directory":
        users, subscribers = int(sizes["directory_users"]), int(sizes["directory_subscribers"])
        if not 1 <= subscribers <= users:
            raise ToolFailed("--directory-subscribers must be from 1 to --directory-users.")
        job = run_directory_bench(Path(args.json), users, subscribers, backends)
        return run(stoppable("bench", job))
    if args.only == "files":
        from flame.devtools.bench.files import run_file_bench

        return run(stoppable("bench", run_file_bench(Path(args.json), int(sizes["file_mib"]))))
    return run(stoppable("bench", run_bench(args)))


def cmd_chaos(args: argparse.Namespace) -> int:
    from flame.devtools.chaos.run import run_chaos

    return run(stoppable("chaos", run_chaos(args)))


def cmd_fuzz(args: argparse.Namespace) -> int:
    from flame.devtools.fuzz.run import run_fuzz

    return run(stoppable("fuzz", run_fuzz(args)))


def cmd_fuzz_schema(args: argparse.Namespace) -> int:
    from flame.devtools.fuzz_schema import run_fuzz_schema

    folder = Path(args.dir) if args.dir else None
    return run(stoppable("fuzz-schema", run_fuzz_schema(args.requests, folder)))


def cmd_screenshots(args: argparse.Namespace) -> int:
    from flame.devtools.screenshots import run_screenshots

    return run(stoppable("screenshots", run_screenshots(Path(args.out))))


def run(tool: Coroutine[Any, Any, int]) -> int:
    """The tool's exit code; Ctrl-C (after the tool's own cleanup) is 130, as for `flame`."""
    try:
        return asyncio.run(tool)
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flame.devtools",
        description="Flame's dev tools: a local demo, the benchmark, the chaos harness, the fuzzer "
        "and the screenshots.",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run a local directory and three demo users",
        description="Start a directory and alice, bob and carol on loopback, "
        "each its own 'flame serve' process. Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--dir", default=".demo", help="where the demo keeps its data (default .demo)"
    )
    demo.add_argument("--fresh", action="store_true", help="delete the demo's data first")
    demo.add_argument(
        "--base-port",
        type=int,
        default=8480,
        help="directory port; users take the next ports (default 8480; 0: any free ports)",
    )
    demo.set_defaults(run=cmd_demo)

    bench = sub.add_parser(
        "bench",
        help="measure latency and throughput on loopback",
        description="Start a directory and two daemons as processes and "
        "measure message latency and throughput, then search over a large message store.",
    )
    bench.add_argument("--messages", type=int, default=None, help="latency sample size (500)")
    bench.add_argument("--burst", type=int, default=None, help="throughput burst size (5000)")
    bench.add_argument(
        "--search-messages",
        type=int,
        default=None,
        help="messages in the search benchmark's synthetic store (1,000,000)",
    )
    bench.add_argument("--json", default="bench-results.json", help="where to write the JSON")
    bench.add_argument(
        "--file-mib", type=int, default=None, help="size of the file figure in MiB (1024; 0: none)"
    )
    bench.add_argument(
        "--directory-users", type=int, default=None, help="users enrolled at the directory (10,000)"
    )
    bench.add_argument(
        "--directory-subscribers",
        type=int,
        default=None,
        help="subscriptions a status change is pushed to (1000)",
    )
    bench.add_argument(
        "--directory-backends",
        default=None,
        help="the directory figures' back ends (sqlite,postgres; --quick: sqlite)",
    )
    bench.add_argument(
        "--only",
        choices=("all", "directory", "files"),
        default="all",
        help="run every figure (all), or the directory's alone (directory), or the file's (files)",
    )
    bench.add_argument(
        "--group-sizes", default=None, help="group sizes of the group delivery figures (5,20)"
    )
    bench.add_argument(
        "--group-messages", type=int, default=None, help="sequential group messages per size (100)"
    )
    bench.add_argument(
        "--group-burst", type=int, default=None, help="burst to the first group size (500)"
    )
    bench.add_argument(
        "--group-file-mib",
        type=int,
        default=None,
        help="size of the file sent to a group of 5, in MiB (256; 0: none)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for development (about a minute); sizes given as flags still win, "
        "and no goal is judged",
    )
    bench.set_defaults(run=cmd_bench)

    chaos = sub.add_parser(
        "chaos",
        help="check delivery under faults on loopback",
        description="Start a directory and several daemons as processes, send messages among "
        "random pairs while killing and restarting daemons and the directory and cutting peers "
        "off, then check that every message arrived exactly once, in order, with its receipt.",
    )
    chaos.add_argument("--messages", type=int, default=2000, help="messages to send (2000)")
    chaos.add_argument("--daemons", type=int, default=5, help="daemons (5)")
    chaos.add_argument("--seed", type=int, help="seed of the messages and faults (random)")
    chaos.add_argument("--faults", type=int, default=12, help="faults in all, of 3 kinds (12)")
    chaos.add_argument("--rate", type=float, default=40.0, help="messages per second (40)")
    chaos.add_argument(
        "--settle-timeout", type=float, help="longest wait for quiescence, s (60 + 0.03/message)"
    )
    chaos.add_argument(
        "--no-receipts", action="store_true", help="do not require receipts back at senders"
    )
    chaos.add_argument(
        "--group-share",
        type=float,
        default=0.2,
        help="share of the messages sent to one group of every daemon (0.2; 0: no group)",
    )
    chaos.add_argument("--dir", help="keep the cluster in this folder (default: a temporary one)")
    chaos.add_argument("--json", default="chaos-results.json", help="where to write the JSON")
    chaos.set_defaults(run=cmd_chaos)

    fuzz = sub.add_parser(
        "fuzz",
        help="send hostile, signed requests to every route and fail on any 5xx",
        description="Start a directory and three daemons on loopback and send them hostile "
        "requests over every peer, relay and directory route, signed with the members' real keys "
        "and with envelopes sealed to real recipients; exit 1 on any 5xx, any error a server "
        "logs, or if honest traffic does not get through afterwards.",
    )
    fuzz.add_argument("--requests", type=int, default=20_000, help="requests to send (20000)")
    fuzz.add_argument("--seed", type=int, help="seed of the generator (random)")
    fuzz.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    fuzz.add_argument("--json", help="also write the report here")
    fuzz.set_defaults(run=cmd_fuzz)
    fuzz_schema = sub.add_parser(
        "fuzz-schema",
        help="fuzz both APIs from their OpenAPI documents",
        description="Start a directory and a daemon, draw signed requests from the OpenAPI "
        "documents they serve (valid and broken bodies, paths, queries) and send them; fails if "
        "any answer is a 5xx (PROTOCOL.md §16).",
    )
    fuzz_schema.add_argument("--requests", type=int, default=20000, help="requests to send (20000)")
    fuzz_schema.add_argument(
        "--dir", help="keep the cluster in this folder (default: a temporary one)"
    )
    fuzz_schema.set_defaults(run=cmd_fuzz_schema)

    screenshots = sub.add_parser(
        "screenshots",
        help="photograph the page's main views, wide and on a phone",
        description="Start a fresh demo cluster in a temporary folder, give it a little history, "
        "and save the page's main views at 1280 and 390 px wide as PNG files, with real Chromium.",
    )
    screenshots.add_argument(
        "--out", default="screenshots", help="where the PNG files go (default screenshots)"
    )
    screenshots.set_defaults(run=cmd_screenshots)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        code: int = args.run(args)
    except FlameError as exc:
        print(f"flame: {exc.message}", file=sys.stderr)
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: a local directory and alice, bob and carol, each its own `flame serve` process on
loopback, enrolled and unlocked. It prints each process's id, and says so when one of them ends
by itself (a crash, a kill); Ctrl-C stops everything; the data stays for the next run."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from pathlib import Path

from flame.daemon import run_until_signalled
from flame.devtools.cluster import Cluster
from flame.devtools.procs import Proc

USERS = ("alice", "bob", "carol")


def how_it_ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


async def report_deaths(procs: list[Proc]) -> None:
    """One line for each process that ends while the demo runs; the others keep running."""
    waits: dict[asyncio.Future[int], Proc] = {}
    for proc in procs:
        assert proc.process is not None
        waits[asyncio.ensure_future(proc.process.wait())] = proc
    try:
        while waits:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for ended in done:
                proc = waits.pop(ended)
                print(
                    f"{proc.name} (pid {proc.pid}) {how_it_ended(ended.result())}; the rest keep "
                    f"running. Its log: {proc.log_path}",
                    flush=True,
                )
    finally:
        for waiting in waits:
            waiting.cancel()


async def run_demo(root: Path, *, fresh: bool, base_port: int) -> int:
    """The directory listens on `base_port` and the users take the next ports, in pairs (peers,
    UI); with 0, the system picks every port."""
    root = root.resolve()
    if fresh and root.exists():
        shutil.rmtree(root)
        print(f"Started clean: deleted the previous demo data in {root}.")
    elif root.exists():
        print(
            f"Keeping the history in {root} (run 'make demo-fresh' or "
            "'python -m flame.devtools demo --fresh' for a clean start)."
        )
    cluster = Cluster(root)
    watch: asyncio.Task[None] | None = None
    try:
        directory = await cluster.start_directory_process(port=base_port)
        rows = []
        for index, name in enumerate(USERS):
            ports = (base_port + 1 + 2 * index, base_port + 2 + 2 * index) if base_port else (0, 0)
            node = await cluster.add_process(name, ports=ports)
            rows.append((name, f"{node.ui_url}/", node.password, node.proc.pid))
        print()
        print(
            f"Flame demo is running (directory {cluster.directory_url}, pid {directory.pid}). "
            "Open a UI and log in:"
        )
        print()
        print(f"  {'user':<7} {'UI address':<28} {'password':<20} pid")
        for name, url, password, pid in rows:
            print(f"  {name:<7} {url:<28} {password:<20} {pid}")
        print()
        print(f"Logs and data: {root}. Press Ctrl-C to stop everything.", flush=True)
        watch = asyncio.create_task(report_deaths(cluster.procs()), name="deaths")
        await run_until_signalled()
    finally:
        if watch is not None:  # stopping them is no death to report
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        with contextlib.suppress(OSError):  # a closed stdout must not keep the daemons running
            print("\nStopping...", flush=True)
        await cluster.stop_processes()
        print("Stopped.")
    return 0

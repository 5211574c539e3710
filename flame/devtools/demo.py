"""`make demo`: a local directory and alice, bob and carol, each its own `flame serve` process on
loopback, enrolled and unlocked. Ctrl-C stops everything; the data stays for the next run."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from flame.daemon import run_until_signalled
from flame.devtools.cluster import Cluster

USERS = ("alice", "bob", "carol")


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
    try:
        await cluster.start_directory_process(port=base_port)
        directory_url = cluster.directory_url
        rows = []
        for index, name in enumerate(USERS):
            ports = (base_port + 1 + 2 * index, base_port + 2 + 2 * index) if base_port else (0, 0)
            node = await cluster.add_process(name, ports=ports)
            rows.append((name, f"{node.ui_url}/", node.password))
        print()
        print(f"Flame demo is running (directory {directory_url}). Open a UI and log in:")
        print()
        print(f"  {'user':<7} {'UI address':<28} password")
        for name, url, password in rows:
            print(f"  {name:<7} {url:<28} {password}")
        print()
        print(f"Logs and data: {root}. Press Ctrl-C to stop everything.", flush=True)
        await run_until_signalled()
    finally:
        with contextlib.suppress(OSError):  # a closed stdout must not keep the daemons running
            print("\nStopping...", flush=True)
        await cluster.stop_processes()
        print("Stopped.")
    return 0

"""`flame demo`: a local directory and alice, bob and carol, each its own `flame serve` process on
loopback, enrolled and unlocked. Ctrl-C stops everything; the data stays for the next run."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from flame.cluster import Proc, daemon_proc, directory_proc, init_user
from flame.daemon import run_until_signalled

USERS = ("alice", "bob", "carol")


async def run_demo(root: Path, *, fresh: bool, base_port: int) -> int:
    root = root.resolve()
    if fresh and root.exists():
        shutil.rmtree(root)
        print(f"Started clean: deleted the previous demo data in {root}.")
    elif root.exists():
        print(
            f"Keeping the history in {root} (run 'make demo-fresh' or 'flame demo --fresh' "
            "for a clean start)."
        )
    directory = directory_proc(root, base_port)
    procs: list[Proc] = [directory]
    directory_url = f"http://127.0.0.1:{base_port}"
    try:
        await directory.start()
        rows = []
        for index, name in enumerate(USERS):
            password = await init_user(root, name, directory_url)
            peer_port, ui_port = base_port + 1 + 2 * index, base_port + 2 + 2 * index
            proc = daemon_proc(root, name, peer_port, ui_port, directory_url)
            procs.append(proc)
            await proc.start()
            rows.append((name, f"http://127.0.0.1:{ui_port}/", password))
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
        print("\nStopping...", flush=True)
        await asyncio.gather(*(p.stop() for p in reversed(procs)))
        print("Stopped.")
    return 0

"""The bench's file figure: one file (default 1 GiB) from alice to bob over loopback, end to end
(from the browser's first upload request until bob's daemon has verified the whole file), with
both daemons' peak RSS, beside this machine's raw loopback TCP, AES-256-GCM and SHA-256 throughput
measured in the same run (machine.py). bob's copy is fetched back through his UI API and hashed.

The file is written to the bench's temporary folder and deleted afterwards; memory stays at a few
MiB whatever its size. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from flame.devtools.bench.machine import (
    PIECE,
    aead_mb_s,
    cpu_meter,
    loopback_tcp_mb_s,
    peak_rss_mib,
    reset_peak_rss,
    sha256_mb_s,
)
from flame.devtools.bench.messages import ONLINE_TIMEOUT_S, REQUEST_TIMEOUT_S, Tab
from flame.devtools.ui import ToolFailed, UiClient

MIB = 1024 * 1024
MIN_TRANSFER_RATE = 5_000_000  # bytes/s below which the bench gives up waiting (timeouts)


def write_source(path: Path, size: int) -> str:
    """An incompressible file of `size` bytes, a MiB at a time; returns its SHA-256."""
    block = bytearray(os.urandom(PIECE))
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        for index in range(0, size, PIECE):
            block[:8] = index.to_bytes(8, "big")  # no two pieces alike
            piece = bytes(block[: min(PIECE, size - index)])
            hasher.update(piece)
            out.write(piece)
    return hasher.hexdigest()


async def sha256_served(ui: UiClient, path: str, timeout_s: float) -> tuple[str, int]:
    """The SHA-256 and size of a file as a daemon's UI API serves it, read as it streams."""
    hasher = hashlib.sha256()
    size = 0
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with ui.session.get(path, params={"download": "1"}, timeout=timeout) as response:
        if response.status != 200:
            raise ToolFailed(f"{ui.name}: GET {path} answered {response.status}")
        async for piece in response.content.iter_chunked(PIECE):
            hasher.update(piece)
            size += len(piece)
    return hasher.hexdigest(), size


# --- the transfer ---------------------------------------------------------------------------------


async def stream(path: Path) -> AsyncIterator[bytes]:
    """The file as the browser sends it: read from disk as it goes, never whole in memory."""
    with path.open("rb") as source:
        while piece := await asyncio.to_thread(source.read, PIECE):
            yield piece


async def wait_verified(
    ws: aiohttp.ClientWebSocketResponse, transfer_id: str, timeout_s: float
) -> float:
    """Until bob's daemon says the file is complete (verified); the time it said so."""
    async with asyncio.timeout(timeout_s):
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(frame.data)
            if event.get("type") != "file_state" or event["file"]["transfer_id"] != transfer_id:
                continue
            state = event["file"]["state"]
            if state == "complete":
                return time.perf_counter()
            if state in ("failed", "cancelled", "declined"):
                raise ToolFailed(f"The transfer ended {state}: {event['file']['error']}")
    raise ToolFailed("bob's live feed closed before the file arrived.")


async def measure_file_transfer(
    alice: Tab, bob: Tab, pids: dict[str, int | None], size_mib: int, folder: Path
) -> dict[str, Any]:
    """`alice` and `bob` are logged in, and bob is online for alice."""
    size = size_mib * MIB
    machine_bytes = min(max(size, 64 * MIB), 1024 * MIB)
    figures: dict[str, Any] = {
        "size_bytes": size,
        "loopback_tcp_mb_s": await asyncio.to_thread(loopback_tcp_mb_s, machine_bytes),
        "aes_256_gcm_mb_s": await asyncio.to_thread(aead_mb_s, min(machine_bytes, 512 * MIB)),
        "sha256_mb_s": await asyncio.to_thread(sha256_mb_s, min(machine_bytes, 512 * MIB)),
    }
    source = folder / "bench-file.bin"
    digest = await asyncio.to_thread(write_source, source, size)
    timeout_s = 60 + size / MIN_TRANSFER_RATE
    try:
        figures["rss_idle_mib"] = {name: peak_rss_mib(pid, "VmRSS") for name, pid in pids.items()}
        figures["rss_reset"] = all(reset_peak_rss(pid) for pid in pids.values())
        feed = await bob.ui.websocket()
        cpu: dict[str, float | None] = {}
        figures["cpu_s"] = cpu
        try:
            with cpu_meter(pids, cpu):
                started = time.perf_counter()
                status, announced = await alice.ui.post(
                    "/ui/api/conversations/bob/files",
                    {"name": "bench.bin", "size": size, "type": "application/octet-stream"},
                )
                if status != 201:
                    raise ToolFailed(f"announcing the file answered {status}: {announced}")
                transfer_id = announced["file"]["transfer_id"]
                async with alice.ui.session.put(
                    f"/ui/api/conversations/bob/files/{transfer_id}/content",
                    data=stream(source),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(size),
                    },
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                ) as response:
                    if response.status != 201:
                        raise ToolFailed(
                            f"uploading answered {response.status}: {await response.text()}"
                        )
                uploaded = time.perf_counter()
                verified = await wait_verified(feed.ws, transfer_id, timeout_s)
        finally:
            await feed.close()
        figures["rss_peak_mib"] = {name: peak_rss_mib(pid) for name, pid in pids.items()}
        path = f"/ui/api/conversations/alice/files/{transfer_id}/content"
        served, served_size = await sha256_served(bob.ui, path, timeout_s)
        figures["sha256_match"] = served == digest and served_size == size
    finally:
        with contextlib.suppress(OSError):
            source.unlink()
    total_s = verified - started
    figures.update(
        {
            "upload_s": round(uploaded - started, 3),
            "transfer_s": round(verified - uploaded, 3),
            "total_s": round(total_s, 3),
            "mb_s": round(size / total_s / 1e6, 1),
            "transfer_mb_s": round(size / (verified - uploaded) / 1e6, 1),
        }
    )
    return figures


async def run_file_bench(json_path: Path, size_mib: int) -> int:
    """`bench --only files`: alice, bob and a directory as processes, the file figure alone,
    printed and written as JSON."""
    from flame.devtools.bench.run import DAEMON_ENV, INIT_ENV
    from flame.devtools.cluster import start_processes
    from flame.devtools.stats import print_rows

    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flame-bench-") as tmp:
        cluster = await start_processes(
            Path(tmp), ("alice", "bob"), DAEMON_ENV, INIT_ENV, timeout_s=REQUEST_TIMEOUT_S
        )
        alice, bob = Tab(cluster.nodes["alice"]), Tab(cluster.nodes["bob"])
        try:
            await alice.ui.wait_online({"bob"}, ONLINE_TIMEOUT_S)
            pids = {name: node.proc.pid for name, node in cluster.nodes.items()}
            figures = await measure_file_transfer(alice, bob, pids, size_mib, cluster.root)
        finally:
            await alice.close()
            await bob.close()
            await cluster.close()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {"file_mib": size_mib},
        "file": figures,
        "total_s": round(time.perf_counter() - begun, 3),
    }
    print_rows("Flame bench: the file alone", table_rows(figures))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {json_path} (total {result['total_s']:.1f} s).")
    return 0 if figures["sha256_match"] else 1


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The file figure's lines of the bench's table."""
    rss = figures.get("rss_peak_mib", {})
    return [
        (f"file, {figures['size_bytes'] / MIB:,.0f} MiB", "alice UI upload -> bob verified"),
        (
            "  end to end",
            f"{figures['mb_s']:,.1f} MB/s ({figures['total_s']:.2f} s: upload "
            f"{figures['upload_s']:.2f} s, then daemon to daemon {figures['transfer_s']:.2f} s, "
            f"{figures['transfer_mb_s']:,.1f} MB/s)",
        ),
        (
            "  peak RSS",
            ", ".join(f"{name} {value} MiB" for name, value in rss.items())
            + ("" if figures.get("rss_reset") else " (whole run: VmHWM could not be reset)"),
        ),
        (
            "  CPU during it",
            ", ".join(f"{n} {v} s" for n, v in figures.get("cpu_s", {}).items()),
        ),
        (
            "  RSS before it",
            ", ".join(f"{n} {v} MiB" for n, v in figures.get("rss_idle_mib", {}).items()),
        ),
        ("  SHA-256 at bob", "matches" if figures["sha256_match"] else "MISMATCH"),
        (
            "  this machine",
            f"loopback TCP {figures['loopback_tcp_mb_s']:,.0f} MB/s, AES-256-GCM "
            f"{figures['aes_256_gcm_mb_s']:,.0f} MB/s, SHA-256 {figures['sha256_mb_s']:,.0f} MB/s",
        ),
    ]

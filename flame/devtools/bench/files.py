"""`flame bench`, the file figure: one file (default 1 GiB) from alice to bob over loopback, end to
end (from the browser's first upload request until bob's daemon has verified the whole file), with
both daemons' peak RSS, beside this machine's raw loopback TCP, AES-256-GCM and SHA-256
throughput measured in the same run.

Nothing here is imported by the daemon. The file is written to the bench's temporary folder and
deleted afterwards; memory stays at a few MiB whatever its size. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flame.errors import FlameError

MIB = 1024 * 1024
PIECE = MIB  # one read of the source file, one send, one AEAD call
MIN_TRANSFER_RATE = 5_000_000  # bytes/s below which the bench gives up waiting (timeouts)


class FileBenchFailed(FlameError):
    code = "bench_failed"


# --- this machine ---------------------------------------------------------------------------------


def loopback_tcp_mb_s(total_bytes: int) -> float:
    """Raw TCP over 127.0.0.1: one thread sends 1 MiB writes, another receives; MB/s."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = 0

    def receive() -> None:
        nonlocal received
        conn, _ = server.accept()
        with conn:
            buffer = bytearray(PIECE)
            view = memoryview(buffer)
            while received < total_bytes:
                count = conn.recv_into(view)
                if count == 0:
                    break
                received += count

    reader = threading.Thread(target=receive)
    reader.start()
    payload = os.urandom(PIECE)
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as client:
        sent = 0
        while sent < total_bytes:
            client.sendall(payload)
            sent += len(payload)
        reader.join(timeout=60)
    elapsed = time.perf_counter() - started
    server.close()
    return round(received / elapsed / 1e6, 1)


def aead_mb_s(total_bytes: int) -> float:
    """AES-256-GCM sealing of 1 MiB chunks, as files are sealed; MB/s."""
    aead = AESGCM(os.urandom(32))
    chunk = os.urandom(PIECE)
    started = time.perf_counter()
    for index in range(total_bytes // PIECE):
        aead.encrypt(index.to_bytes(12, "big"), chunk, b"flame/v1/file-chunk")
    return round(total_bytes / (time.perf_counter() - started) / 1e6, 1)


def sha256_mb_s(total_bytes: int) -> float:
    hasher = hashlib.sha256()
    chunk = os.urandom(PIECE)
    started = time.perf_counter()
    for _ in range(total_bytes // PIECE):
        hasher.update(chunk)
    return round(total_bytes / (time.perf_counter() - started) / 1e6, 1)


def peak_rss_mib(pid: int | None) -> float | None:
    """VmHWM of a process (Linux), in MiB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int | None) -> bool:
    """Start VmHWM afresh (writing 5 to clear_refs), so the figure belongs to the transfer."""
    if pid is None:
        return False
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


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


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(PIECE):
            hasher.update(piece)
    return hasher.hexdigest()


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
                raise FileBenchFailed(f"The transfer ended {state}: {event['file']['error']}")
    raise FileBenchFailed("bob's live feed closed before the file arrived.")


async def measure_file_transfer(
    alice: Any, bob: Any, pids: dict[str, int | None], size_mib: int, folder: Path
) -> dict[str, Any]:
    """`alice` and `bob` are bench.Ui tabs (logged in, bob online for alice)."""
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
        figures["rss_reset"] = all(reset_peak_rss(pid) for pid in pids.values())
        async with bob.session.ws_connect("/ui/api/ws", origin=bob.node.ui_url) as ws:
            hello = await ws.receive(timeout=10)
            if hello.type != aiohttp.WSMsgType.TEXT:
                raise FileBenchFailed("bob's live feed did not open.")
            started = time.perf_counter()
            async with alice.session.post(
                "/ui/api/conversations/bob/files",
                json={"name": "bench.bin", "size": size, "type": "application/octet-stream"},
            ) as response:
                announced = await response.json()
                if response.status != 201:
                    raise FileBenchFailed(
                        f"announcing the file answered {response.status}: {announced}"
                    )
            transfer_id = announced["file"]["transfer_id"]
            async with alice.session.put(
                f"/ui/api/conversations/bob/files/{transfer_id}/content",
                data=stream(source),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                if response.status != 201:
                    raise FileBenchFailed(
                        f"uploading answered {response.status}: {await response.text()}"
                    )
            uploaded = time.perf_counter()
            verified = await wait_verified(ws, transfer_id, timeout_s)
        figures["rss_peak_mib"] = {name: peak_rss_mib(pid) for name, pid in pids.items()}
        stored = await asyncio.to_thread(
            lambda: sorted((bob.node.db_path.parent / "files").glob("in-*"))
        )
        copies = [p for p in stored if p.stat().st_size == size]
        figures["sha256_match"] = (
            bool(copies) and await asyncio.to_thread(sha256_of, copies[-1]) == digest
        )
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


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The file figure's lines of `flame bench`'s table."""
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
        ("  SHA-256 at bob", "matches" if figures["sha256_match"] else "MISMATCH"),
        (
            "  this machine",
            f"loopback TCP {figures['loopback_tcp_mb_s']:,.0f} MB/s, AES-256-GCM "
            f"{figures['aes_256_gcm_mb_s']:,.0f} MB/s, SHA-256 {figures['sha256_mb_s']:,.0f} MB/s",
        ),
    ]

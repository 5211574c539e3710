"""The bench's figures of this machine and of its processes: what it is, what loopback TCP,
AES-256-GCM and SHA-256 manage here (the limits beside which the file figure is read), and each
process's CPU time and peak memory (Linux /proc; None elsewhere)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PIECE = 1024 * 1024  # one send, one AEAD call, one hash update


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


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


def loopback_rtt_ms(round_trips: int = 1000) -> float:
    """The median round trip of one small message over 127.0.0.1 (a thread echoes it), ms."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)

    echoer = threading.Thread(target=echo)
    echoer.start()
    times = []
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(round_trips):
            started = time.perf_counter()
            client.sendall(b"x" * 32)
            client.recv(64)
            times.append(time.perf_counter() - started)
    echoer.join(timeout=10)
    server.close()
    return round(1000 * sorted(times)[len(times) // 2], 3)


def fsync_ms(folder: Path, count: int = 200) -> float:
    """The median fsync of a 4 KiB write in `folder` (where the bench's databases are), ms."""
    path = folder / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"\0" * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return round(1000 * sorted(times)[len(times) // 2], 3)


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


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far."""
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def cpu_meter(pids: Mapping[str, int | None], into: dict[str, float | None]) -> Iterator[None]:
    """CPU seconds each process (and this one, as `bench_client`) spent inside the block."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = time.process_time()
    yield
    for name, pid in pids.items():
        after, start = cpu_seconds(pid), before[name]
        into[name] = None if after is None or start is None else round(after - start, 3)
    into["bench_client"] = round(time.process_time() - own, 3)


def peak_rss_mib(pid: int | None, field: str = "VmHWM") -> float | None:
    """VmHWM of a process (its peak RSS since the last reset), or another field of its status
    such as VmRSS (now), in MiB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int | None) -> bool:
    """Start VmHWM afresh (writing 5 to clear_refs), so the figure belongs to what follows."""
    if pid is None:
        return False
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True

"""The chaos harness's faults: kill -9 and restart of a daemon or of the directory, and a peer cut
off by its proxy, in one lane per kind so that faults of different kinds overlap. Every restart
asks for the ports the process had; afterwards everything is brought up again."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from flame.devtools.chaos.peers import Chaos, Peer
from flame.devtools.procs import Proc
from flame.devtools.ui import ToolFailed

FAULT_SLOT_S = 5.0  # time one fault takes in its lane, outage and recovery included
FAULT_SPAN = 0.9  # faults happen from 5 % to 95 % of the sending phase
FAULT_KINDS = ("daemon_kill", "directory_kill", "block")
# How long each kind of fault lasts (seconds, uniform).
HOLD_S = {"daemon_kill": (0.5, 3.0), "directory_kill": (1.0, 4.0), "block": (1.0, 4.0)}


@dataclass
class Faults:
    log: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for entry in self.log if entry["type"] == kind)


async def restart(proc: Proc, faults: Faults) -> None:
    """Start a killed process again on the same ports (a few tries: the port may linger)."""
    for attempt in range(3):
        try:
            await proc.start()
            return
        except RuntimeError as exc:
            faults.problems.append(f"restart of {proc.name} (try {attempt + 1}): {exc}")
            await proc.stop()
            await asyncio.sleep(1.0)
    raise ToolFailed(f"{proc.name} could not be restarted; see {proc.log_path}")


def stopping() -> bool:
    """The harness is being stopped (Ctrl-C, SIGTERM): a killed process then stays down, for a
    restart would race the stop of every process and could outlive the harness."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def kill_daemon(peer: Peer, hold_s: float, faults: Faults) -> None:
    async with peer.lock:
        peer.up = False
        await peer.node.proc.kill()
        try:
            await asyncio.sleep(hold_s)
        finally:
            if not stopping():
                await restart(peer.node.proc, faults)
                await peer.node.login()
                peer.up = True


async def kill_directory(chaos: Chaos, hold_s: float, faults: Faults) -> int:
    """Returns how many running daemons' UIs said "degraded" at the end of the outage."""
    await chaos.directory.kill()
    try:
        await asyncio.sleep(hold_s)
        return sum(await asyncio.gather(*(says_degraded(p) for p in chaos.peers.values())))
    finally:
        if not stopping():
            await restart(chaos.directory, faults)


async def says_degraded(peer: Peer) -> bool:
    ui = peer.ui
    if not peer.up or ui is None:
        return False
    try:
        status, me = await ui.get("/ui/api/me")
    except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError):
        return False
    return status == 200 and isinstance(me, dict) and me.get("directory") == "degraded"


async def block_peer(peer: Peer, hold_s: float) -> None:
    peer.proxy.block()
    try:
        await asyncio.sleep(hold_s)
    finally:
        peer.proxy.unblock()


def fault_counts(total: int, rng: random.Random) -> dict[str, int]:
    """`total` faults over the kinds: as even as possible, the remainder to random kinds."""
    counts = dict.fromkeys(FAULT_KINDS, total // len(FAULT_KINDS))
    for kind in rng.sample(FAULT_KINDS, total % len(FAULT_KINDS)):
        counts[kind] += 1
    return counts


def sending_duration(messages: int, rate: float, counts: dict[str, int]) -> float:
    """Long enough for the messages at `rate`, and for each lane's faults to fit in its slots."""
    busiest = max(counts.values(), default=0)
    return max(messages / rate, busiest * FAULT_SLOT_S / FAULT_SPAN)


async def run_faults(
    chaos: Chaos,
    counts: dict[str, int],
    duration_s: float,
    rng: random.Random,
    faults: Faults,
    begun: float,
    progress: Callable[[str], None],
) -> None:
    """One lane per kind, so that faults of different kinds overlap (a daemon down while the
    directory is down and another peer is cut off) but never more than one of each at a time:
    at most one daemon is killed at once, so progress is always possible."""
    names = sorted(chaos.peers)
    plans: dict[str, list[tuple[float, float, str]]] = {}
    for kind in FAULT_KINDS:
        count = counts[kind]
        if count == 0:
            continue
        slot = duration_s * FAULT_SPAN / count
        low, high = HOLD_S[kind]
        entries = []
        for i in range(count):
            hold = rng.uniform(low, min(high, max(low, slot - 2.0)))
            start = duration_s * 0.05 + i * slot + rng.uniform(0.0, max(0.0, slot - hold - 2.0))
            target = "directory" if kind == "directory_kill" else rng.choice(names)
            entries.append((start, hold, target))
        plans[kind] = entries

    async def lane(kind: str, entries: list[tuple[float, float, str]]) -> None:
        for start, hold, target in entries:
            await asyncio.sleep(max(0.0, begun + start - time.monotonic()))
            at = time.monotonic() - begun
            progress(f"fault: {kind} {target} for {hold:.1f} s")
            entry: dict[str, Any] = {"type": kind, "target": target, "at_s": round(at, 2)}
            if kind == "daemon_kill":
                await kill_daemon(chaos.peers[target], hold, faults)
            elif kind == "directory_kill":
                entry["daemons_degraded"] = await kill_directory(chaos, hold, faults)
            else:
                await block_peer(chaos.peers[target], hold)
            entry["hold_s"] = round(hold, 2)
            entry["recovered_after_s"] = round(time.monotonic() - begun - at, 2)
            faults.log.append(entry)

    await asyncio.gather(*(lane(kind, entries) for kind, entries in plans.items()))


async def ensure_all_up(chaos: Chaos, faults: Faults) -> None:
    """After the faults: every proxy open, every process running, every UI logged in. A process
    that exited although nobody killed it is a problem in itself."""
    for peer in chaos.peers.values():
        peer.proxy.unblock()
    for proc in chaos.procs():
        if proc.process is None or proc.process.returncode is not None:
            code = None if proc.process is None else proc.process.returncode
            faults.problems.append(f"{proc.name} had exited by itself (code {code})")
            await proc.stop()
            await restart(proc, faults)
    for peer in chaos.peers.values():
        async with peer.lock:
            await peer.node.login()
            peer.up = True

"""`flame chaos`: a directory and several daemons as real processes on loopback, messages among
random pairs through their UI APIs, and faults meanwhile: kill -9 and restart of daemons and of the
directory, and peers cut off by a fault-injecting proxy. When the faults stop and everything is up
again, every accepted message is checked: delivered exactly once, in per-sender order, and its
receipt back at the sender (DESIGN §6-7, issue 4 part 6).

Each daemon's peer port sits behind a TCP proxy in this process (127.0.0.1 only), and the daemon
advertises the proxy as its public address, so peers reach each other only through the proxies.
Every port is chosen once at start: a restarted process keeps its address. Nothing here is imported
by the daemon. Every wait is bounded in time; every process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel

from flame.bench import free_ports, percentile
from flame.cluster import Proc, daemon_proc, directory_proc, init_user, stoppable
from flame.config import Settings
from flame.errors import FlameError

NAMES = ("ana", "ben", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo")
JSON_VERSION = 1
DEFAULT_RATE = 40.0  # messages per second, steady
SEND_CONCURRENCY = 16  # POSTs in flight at most
REQUEST_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 40  # per planned message; each is a fresh POST (a new message)
SEND_TAIL_S = 120.0  # after the planned sends, how long the deferred ones may still wait
RETRY_AFTER_S = 0.5  # a POST refused because its sender was down is tried again after this
FAULT_SLOT_S = 5.0  # time one fault takes in its lane, outage and recovery included
FAULT_SPAN = 0.9  # faults happen from 5 % to 95 % of the sending phase
FAULT_KINDS = ("daemon_kill", "directory_kill", "block")
# How long each kind of fault lasts (seconds, uniform).
HOLD_S = {"daemon_kill": (0.5, 3.0), "directory_kill": (1.0, 4.0), "block": (1.0, 4.0)}
TEXT_CHARS = 80
POLL_S = 0.5
EXAMPLES = 10  # problem examples kept in the JSON per kind

# Short intervals so that faults are noticed and healed in seconds. Cheap Argon2 at `flame init`
# only (the cost is stored with the keys). The user's own config and data stay out of it.
DAEMON_ENV = {
    "FLAME_DAEMON_PRESENCE_INTERVAL_S": "0.5",
    "FLAME_DAEMON_DIRECTORY_SYNC_S": "0.5",
    "FLAME_DIRECTORY_PRESENCE_TTL_S": "2",
    "FLAME_DAEMON_RETRY_BASE_S": "0.2",
    "FLAME_DAEMON_RETRY_MAX_S": "2",
    "FLAME_DAEMON_REQUEST_TIMEOUT_S": "5",
    "FLAME_SECURITY_LOGIN_BURST": "1000",
}
# Settings that may or may not exist in this version (relays, degraded mode): set only when the
# settings model knows them, since an unknown FLAME_* variable is a configuration error.
OPTIONAL_ENV = {
    "FLAME_DAEMON_RELAY_AFTER_S": "1",
    "FLAME_DAEMON_RELAY_RETRY_S": "1",
    "FLAME_DAEMON_PROBE_INTERVAL_S": "0.5",
}
INIT_ENV = {"FLAME_SECURITY_ARGON2_MEMORY_KIB": "1024", "FLAME_SECURITY_ARGON2_ITERATIONS": "1"}
RECEIPT_STATES = ("delivered", "read")


class ChaosFailed(FlameError):
    code = "chaos_failed"


def known_setting(env_name: str) -> bool:
    """Whether FLAME_<SECTION>_<KEY> names a setting of this version of Flame."""
    section, _, key = env_name.removeprefix("FLAME_").lower().partition("_")
    section_field = Settings.model_fields.get(section)
    model = section_field.annotation if section_field is not None else None
    return isinstance(model, type) and issubclass(model, BaseModel) and key in model.model_fields


def cluster_env() -> dict[str, str]:
    optional = {k: v for k, v in OPTIONAL_ENV.items() if known_setting(k)}
    return {**{k: v for k, v in DAEMON_ENV.items() if known_setting(k)}, **optional}


def pick_pairs(rng: random.Random, names: tuple[str, ...], count: int) -> list[tuple[str, str]]:
    """`count` (sender, recipient) pairs, two different names each."""
    pairs = []
    for _ in range(count):
        sender, recipient = rng.sample(names, 2)
        pairs.append((sender, recipient))
    return pairs


def summary_ms(seconds: list[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in seconds)
    return {
        "count": len(values),
        "p50": round(percentile(values, 0.50), 1),
        "p90": round(percentile(values, 0.90), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(values[-1], 1) if values else 0.0,
    }


# --- the fault-injecting proxy ------------------------------------------------------------------


class FaultProxy:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target. Blocked, it closes every accepted
    connection at once and cuts those already open (a peer that is unreachable)."""

    def __init__(self, name: str, port: int, target_port: int) -> None:
        self.name = name
        self.port = port
        self.target_port = target_port
        self.blocked = False
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.WriteTransport] = set()
        self.handlers: set[asyncio.Task[Any]] = set()
        self.connections = 0
        self.refused = 0
        self.cut = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def block(self) -> None:
        self.blocked = True
        self.cut += len(self.transports)
        for transport in list(self.transports):
            transport.abort()

    def unblock(self) -> None:
        self.blocked = False

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.blocked = True
        for transport in list(self.transports):
            transport.abort()
        if self.handlers:  # cut off, they end by themselves; cancelled only if they do not
            _, late = await asyncio.wait(set(self.handlers), timeout=2.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 5.0)
            self.server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            await self._relay(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # cancelled only by stop(): asyncio would log a cancelled handler as an error
        finally:
            if task is not None:
                self.handlers.discard(task)
            writer.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            self.refused += 1
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port), 5.0
            )
        except (OSError, TimeoutError):
            return  # the daemon is down: the caller sees the connection closed
        if self.blocked:
            up_writer.transport.abort()
            self.refused += 1
            return
        self.connections += 1
        pair = (writer.transport, up_writer.transport)
        self.transports.update(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.transports.difference_update(pair)
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
    except (OSError, RuntimeError):
        writer.transport.abort()


# --- the cluster ------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    proc: Proc
    proxy: FaultProxy
    ui_url: str
    password: str
    db_path: Path
    session: aiohttp.ClientSession | None = None
    up: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url=self.ui_url,
            headers={"Origin": self.ui_url},
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=SEND_CONCURRENCY + 4),
        )

    async def login(self) -> None:
        """A new UI session (sessions live in the daemon's memory: a restart forgets them)."""
        if self.session is not None:
            await self.session.close()
        self.session = self.new_session()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                async with self.session.post(
                    "/ui/api/login", json={"password": self.password}
                ) as response:
                    if response.status == 200:
                        return
                    problem = f"answered {response.status}: {await response.text()}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"failed: {exc!r}"
            if time.monotonic() > deadline:
                raise ChaosFailed(f"{self.name}: UI login {problem}")
            await asyncio.sleep(0.2)

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        assert self.session is not None
        async with self.session.get(path, params=params) as response:
            if response.status != 200:
                raise ChaosFailed(
                    f"{self.name}: GET {path} answered {response.status}: {await response.text()}"
                )
            return await response.json()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


@dataclass
class Cluster:
    root: Path
    directory: Proc
    nodes: dict[str, Node] = field(default_factory=dict)

    def procs(self) -> list[Proc]:
        return [self.directory, *(n.proc for n in self.nodes.values())]

    async def stop(self) -> dict[str, Any]:
        """SIGTERM to every process (SIGKILL after 10 s); their exit codes (-9: it had to be
        killed, -15: it died of the SIGTERM instead of handling it)."""
        for node in self.nodes.values():
            node.up = False
        await asyncio.gather(*(n.close() for n in self.nodes.values()), return_exceptions=True)
        codes = await asyncio.gather(
            *(n.proc.stop() for n in self.nodes.values()), return_exceptions=True
        )
        await asyncio.gather(*(n.proxy.stop() for n in self.nodes.values()), return_exceptions=True)
        stopped: dict[str, Any] = {"directory": await self.directory.stop()}
        for name, code in zip(self.nodes, codes, strict=True):
            stopped[name] = code if isinstance(code, int | None) else repr(code)
        return stopped

    def count_log_lines(self, word: str) -> int:
        """Lines of the daemons' logs that mention `word` (e.g. relay activity). Informational."""
        total = 0
        for node in self.nodes.values():
            with contextlib.suppress(OSError):
                text = node.proc.log_path.read_text(errors="replace").lower()
                total += sum(1 for line in text.splitlines() if word in line)
        return total

    def log_tails(self, lines: int = 20) -> str:
        out = []
        for proc in self.procs():
            with contextlib.suppress(OSError):
                tail = proc.log_path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {proc.name} ({proc.log_path}) ---\n" + "\n".join(tail))
        return "\n".join(out)

    def log_problems(self) -> list[str]:
        """Each ERROR (or worse) in the processes' logs, with the last line of its traceback."""
        found = []
        for proc in self.procs():
            with contextlib.suppress(OSError):
                lines = proc.log_path.read_text(errors="replace").splitlines()
                for index, line in enumerate(lines):
                    if " ERROR " not in line and " CRITICAL " not in line:
                        continue
                    cause = ""
                    for after in lines[index + 1 : index + 80]:
                        if after[:4].isdigit():  # the next log record
                            break
                        if after and not after[0].isspace() and not after.startswith("Traceback"):
                            cause = after
                    message = line.split(" ", 2)[-1]
                    found.append(
                        f"{proc.name}: {message[:200]}" + (f" | {cause[:200]}" if cause else "")
                    )
        return found


async def start_cluster(root: Path, names: tuple[str, ...], env: dict[str, str]) -> Cluster:
    isolated = {"XDG_CONFIG_HOME": str(root / "config"), "XDG_DATA_HOME": str(root / "data")}
    env = {**env, **isolated}
    directory_port, *ports = free_ports(1 + 3 * len(names))
    directory_url = f"http://127.0.0.1:{directory_port}"
    cluster = Cluster(root, directory_proc(root, directory_port, "open", env))
    try:
        await cluster.directory.start()
        passwords = await asyncio.gather(
            *(init_user(root, name, directory_url, {**env, **INIT_ENV}) for name in names)
        )
        for index, (name, password) in enumerate(zip(names, passwords, strict=True)):
            peer_port, proxy_port, ui_port = ports[3 * index : 3 * index + 3]
            proxy = FaultProxy(name, proxy_port, peer_port)
            await proxy.start()
            own = {**env, "FLAME_DAEMON_PUBLIC_ADDRESS": proxy.url}
            proc = daemon_proc(root, name, peer_port, ui_port, directory_url, own)
            cluster.nodes[name] = Node(
                name, proc, proxy, f"http://127.0.0.1:{ui_port}", password, root / name / "flame.db"
            )
        await asyncio.gather(*(n.proc.start() for n in cluster.nodes.values()))
        await asyncio.gather(*(n.login() for n in cluster.nodes.values()))
        for node in cluster.nodes.values():
            node.up = True
    except BaseException as exc:
        if isinstance(exc, Exception):
            print(cluster.log_tails(), file=sys.stderr)
        await cluster.stop()
        if isinstance(exc, RuntimeError):
            raise ChaosFailed(f"The cluster did not start: {exc}") from exc
        raise
    return cluster


async def wait_all_known(cluster: Cluster, timeout_s: float) -> None:
    """Every daemon knows every other one, online: the faults may begin."""
    deadline = time.monotonic() + timeout_s
    for node in cluster.nodes.values():
        others = set(cluster.nodes) - {node.name}
        while True:
            contacts = (await node.get("/ui/api/contacts"))["contacts"]
            online = {c["username"] for c in contacts if c["status"] == "online"}
            if others <= online:
                break
            if time.monotonic() > deadline:
                raise ChaosFailed(
                    f"{node.name} did not see {sorted(others - online)} online "
                    f"within {timeout_s:.0f} s."
                )
            await asyncio.sleep(0.2)


# --- sending ----------------------------------------------------------------------------------


@dataclass
class Planned:
    index: int
    sender: str
    recipient: str
    attempts: int = 0
    not_before: float = 0.0

    def text(self) -> str:
        head = f"chaos {self.index:06d}.{self.attempts} {self.sender}>{self.recipient} "
        return head + "x" * max(0, TEXT_CHARS - len(head))


@dataclass
class Accepted:
    index: int
    sender: str
    recipient: str
    text: str
    id: str
    seq: int
    sent_at: float  # the message's sent_at (the sender daemon's clock at commit)
    accepted_at: float  # this process's clock when the 201 arrived


@dataclass
class Sending:
    """What the sender did: every accepted message, and what became of the other attempts."""

    accepted: list[Accepted] = field(default_factory=list)
    deferred: list[Planned] = field(default_factory=list)
    maybe_stored: set[str] = field(default_factory=set)  # texts of POSTs whose fate is unknown
    refused_down: int = 0  # attempts made (or skipped) while the sender was down
    relogins: int = 0
    errors: list[str] = field(default_factory=list)  # unexpected answers from a running daemon
    skipped: list[Planned] = field(default_factory=list)


async def post_message(cluster: Cluster, item: Planned, sending: Sending) -> None:
    """One attempt: POST through the sender's UI API. Not accepted: deferred for a new try."""
    node = cluster.nodes[item.sender]
    item.attempts += 1
    text = item.text()
    session = node.session
    if not node.up or session is None:
        _defer(item, sending, down=True)
        return
    try:
        async with session.post(
            f"/ui/api/conversations/{item.recipient}/messages", json={"text": text}
        ) as response:
            status = response.status
            body = await response.text()
    except aiohttp.ClientConnectorError:
        _defer(item, sending, down=True)  # never connected: nothing was stored
        return
    except (aiohttp.ClientError, TimeoutError, RuntimeError):
        sending.maybe_stored.add(text)  # cut mid-request: perhaps stored, perhaps not
        _defer(item, sending, down=True)
        return
    if status == 201:
        message = json.loads(body)["message"]
        sending.accepted.append(
            Accepted(
                item.index,
                item.sender,
                item.recipient,
                text,
                str(message["id"]),
                int(message["seq"]),
                float(message["sent_at"]),
                time.time(),
            )
        )
        return
    if status == 401 and node.up:
        # The daemon was restarted under us and forgot the session: log in again.
        async with node.lock:
            if node.up and node.session is session:
                sending.relogins += 1
                try:
                    await node.login()
                except ChaosFailed as exc:
                    sending.errors.append(exc.message)
        _defer(item, sending, down=True)
        return
    sending.maybe_stored.add(text)
    if len(sending.errors) < 1000:
        sending.errors.append(f"{item.sender} -> {item.recipient}: {status} {body[:200]}")
    _defer(item, sending, down=False)


def _defer(item: Planned, sending: Sending, *, down: bool) -> None:
    if down:
        sending.refused_down += 1
    if item.attempts >= MAX_ATTEMPTS:
        sending.skipped.append(item)
        return
    item.not_before = time.monotonic() + RETRY_AFTER_S
    sending.deferred.append(item)


def _ready_retry(cluster: Cluster, sending: Sending) -> Planned | None:
    now = time.monotonic()
    for position, item in enumerate(sending.deferred):
        if item.not_before <= now and cluster.nodes[item.sender].up:
            return sending.deferred.pop(position)
    return None


async def send_all(
    cluster: Cluster,
    plan: list[Planned],
    sending: Sending,
    duration_s: float,
    quiet: Callable[[], bool],
    failed: Callable[[], bool],
    progress: Callable[[str], None],
) -> None:
    """The plan at a steady rate over `duration_s`, one retry beside each planned send; then the
    deferred ones, once `quiet()` says the faults are over. Bounded: each message has at most
    MAX_ATTEMPTS attempts, and what is still deferred SEND_TAIL_S after the planned sends is
    skipped. Stops early when `failed()` (the faults could not be healed)."""
    interval = duration_s / max(1, len(plan))
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    in_flight: set[asyncio.Task[None]] = set()

    async def attempt(item: Planned) -> None:
        async with gate:
            await post_message(cluster, item, sending)

    def launch(item: Planned) -> None:
        task = asyncio.create_task(attempt(item))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    started = time.monotonic()
    reported = 0
    try:
        for tick, item in enumerate(plan):
            await asyncio.sleep(max(0.0, started + tick * interval - time.monotonic()))
            if failed():
                return
            launch(item)
            retry = _ready_retry(cluster, sending)
            if retry is not None:
                launch(retry)
            if tick + 1 >= reported + max(1, len(plan) // 10):
                reported = tick + 1
                progress(
                    f"sent {tick + 1}/{len(plan)} planned, {len(sending.accepted)} accepted, "
                    f"{len(sending.deferred)} waiting for their sender"
                )
        deadline = time.monotonic() + SEND_TAIL_S
        while (in_flight or sending.deferred) and not failed():
            if time.monotonic() > deadline:
                sending.skipped.extend(sending.deferred)
                sending.deferred.clear()
                break
            if quiet() or not in_flight:
                retry = _ready_retry(cluster, sending)
                if retry is not None:
                    launch(retry)
                    await asyncio.sleep(interval)
                    continue
            await asyncio.sleep(0.05)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=REQUEST_TIMEOUT_S + 5)
    finally:
        for task in list(in_flight):
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


# --- faults -----------------------------------------------------------------------------------


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
    raise ChaosFailed(f"{proc.name} could not be restarted; see {proc.log_path}")


async def kill_daemon(cluster: Cluster, node: Node, hold_s: float, faults: Faults) -> None:
    async with node.lock:
        node.up = False
        await node.proc.kill()
        try:
            await asyncio.sleep(hold_s)
        finally:
            await restart(node.proc, faults)
            await node.login()
            node.up = True


async def kill_directory(cluster: Cluster, hold_s: float, faults: Faults) -> int:
    """Returns how many running daemons' UIs said "degraded" at the end of the outage."""
    await cluster.directory.kill()
    try:
        await asyncio.sleep(hold_s)
        return sum(await asyncio.gather(*(says_degraded(n) for n in cluster.nodes.values())))
    finally:
        await restart(cluster.directory, faults)


async def says_degraded(node: Node) -> bool:
    if not node.up or node.session is None:
        return False
    try:
        async with node.session.get("/ui/api/me") as response:
            me = await response.json() if response.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError):
        return False
    return isinstance(me, dict) and me.get("directory") == "degraded"


async def block_peer(node: Node, hold_s: float) -> None:
    node.proxy.block()
    try:
        await asyncio.sleep(hold_s)
    finally:
        node.proxy.unblock()


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
    cluster: Cluster,
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
    names = sorted(cluster.nodes)
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
                await kill_daemon(cluster, cluster.nodes[target], hold, faults)
            elif kind == "directory_kill":
                entry["daemons_degraded"] = await kill_directory(cluster, hold, faults)
            else:
                await block_peer(cluster.nodes[target], hold)
            entry["hold_s"] = round(hold, 2)
            entry["recovered_after_s"] = round(time.monotonic() - begun - at, 2)
            faults.log.append(entry)

    await asyncio.gather(*(lane(kind, entries) for kind, entries in plans.items()))


async def ensure_all_up(cluster: Cluster, faults: Faults) -> None:
    """After the faults: every proxy open, every process running, every UI logged in. A process
    that exited although nobody killed it is a problem in itself."""
    for node in cluster.nodes.values():
        node.proxy.unblock()
    for proc in cluster.procs():
        if proc.process is None or proc.process.returncode is not None:
            code = None if proc.process is None else proc.process.returncode
            faults.problems.append(f"{proc.name} had exited by itself (code {code})")
            await proc.stop()
            await restart(proc, faults)
    for node in cluster.nodes.values():
        async with node.lock:
            await node.login()
            node.up = True


# --- checking ---------------------------------------------------------------------------------


def read_rows(db_path: Path) -> list[sqlite3.Row]:
    """Every message row of a daemon's database, opened read-only beside the running daemon."""
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute("SELECT * FROM messages"))


def relay_holdings(db_path: Path) -> dict[str, int]:
    """Rows in any relay/deposit table the daemon may have (store-and-forward): should be empty
    once everything is delivered. Informational."""
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    found: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as conn:
        tables = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if "relay" in row[0] or "deposit" in row[0] or row[0] == "outbox"
        ]
        for table in tables:
            found[table] = int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    return found


def candidate_keys(author: str, message_id: str) -> tuple[str, ...]:
    """The UI's id of a message, and the key the store may use for it (author:envelope id)."""
    if message_id.startswith(f"{author}:"):
        return (message_id, message_id.removeprefix(f"{author}:"))
    return (message_id, f"{author}:{message_id}")


@dataclass
class Snapshot:
    """Every daemon's messages, read at one moment."""

    rows: dict[str, list[sqlite3.Row]]

    @classmethod
    async def take(cls, cluster: Cluster) -> Snapshot:
        rows = {}
        for name, node in cluster.nodes.items():
            for attempt in range(5):
                try:
                    rows[name] = await asyncio.to_thread(read_rows, node.db_path)
                    break
                except sqlite3.Error:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)
        return cls(rows)

    def texts(self, name: str) -> list[sqlite3.Row]:
        return [r for r in self.rows[name] if r["kind"] == "text"]

    def incoming(self, name: str) -> dict[str, sqlite3.Row]:
        return {r["id"]: r for r in self.texts(name) if r["direction"] == "in"}

    def outgoing(self, name: str) -> dict[str, sqlite3.Row]:
        return {r["id"]: r for r in self.texts(name) if r["direction"] == "out"}


def find(rows: dict[str, sqlite3.Row], author: str, message_id: str) -> sqlite3.Row | None:
    for key in candidate_keys(author, message_id):
        if key in rows:
            return rows[key]
    return None


def settled(snapshot: Snapshot, accepted: list[Accepted], receipts: bool) -> tuple[bool, str]:
    """Whether every accepted message is at its recipient and acknowledged at its sender, and no
    outgoing message anywhere is still on its way."""
    incoming = {name: snapshot.incoming(name) for name in snapshot.rows}
    outgoing = {name: snapshot.outgoing(name) for name in snapshot.rows}
    missing = sum(1 for a in accepted if find(incoming[a.recipient], a.sender, a.id) is None)
    wanted = RECEIPT_STATES if receipts else ("sent", *RECEIPT_STATES)
    unacknowledged = 0
    for a in accepted:
        row = find(outgoing[a.sender], a.sender, a.id)
        if row is None or row["state"] not in wanted:
            unacknowledged += 1
    settled_states = ("failed", *wanted)
    in_transit = sum(
        1 for rows in outgoing.values() for r in rows.values() if r["state"] not in settled_states
    )
    done = missing == 0 and unacknowledged == 0 and in_transit == 0
    return done, (
        f"{missing} not yet at their recipient, {unacknowledged} without "
        f"{'a receipt' if receipts else 'an acknowledgement'} at their sender; {in_transit} "
        f"outgoing messages in all not yet {'/'.join(wanted)} or failed"
    )


async def wait_quiet(
    cluster: Cluster,
    accepted: list[Accepted],
    receipts: bool,
    timeout_s: float,
    progress: Callable[[str], None],
) -> tuple[bool, float]:
    started = time.monotonic()
    last_report = started
    while True:
        done, state = settled(await Snapshot.take(cluster), accepted, receipts)
        now = time.monotonic()
        if done:
            return True, now - started
        if now - started > timeout_s:
            progress(f"not quiet after {timeout_s:.0f} s: {state}")
            return False, now - started
        if now - last_report > 5.0:
            last_report = now
            progress(f"waiting: {state}")
        await asyncio.sleep(POLL_S)


async def ui_listing_seqs(node: Node, peer: str, max_pages: int) -> list[int]:
    """The incoming messages' seq numbers as the recipient's UI lists the conversation, oldest
    first, walking back page by page as the UI scrolls."""
    pages: list[list[int]] = []
    params = {"limit": "200"}
    path = f"/ui/api/conversations/{peer}/messages"
    for _ in range(max_pages):
        page = await node.get(path, params)
        pages.append(
            [
                int(m["seq"])
                for m in page["messages"]
                if m["direction"] == "in" and m["author"] == peer
            ]
        )
        if page["next_before"] is None:
            break
        params["before"] = str(page["next_before"])
    return [seq for page in reversed(pages) for seq in page]


@dataclass
class Verdict:
    counts: dict[str, Any]
    delivery_s: list[float]
    examples: dict[str, list[str]]


def check(snapshot: Snapshot, sending: Sending, receipts: bool) -> Verdict:
    """Every accepted message: at its recipient exactly once, with its sender's seq, from the
    right author; the seqs of each pair exactly 1..n at the recipient; the receipt back home."""
    examples: dict[str, list[str]] = defaultdict(list)

    def example(kind: str, text: str) -> None:
        if len(examples[kind]) < EXAMPLES:
            examples[kind].append(text)

    names = list(snapshot.rows)
    incoming = {name: snapshot.incoming(name) for name in names}
    outgoing = {name: snapshot.outgoing(name) for name in names}
    lost = duplicated = out_of_order = without_receipt = wrong_author = 0
    states: Counter[str] = Counter()
    delivery_s: list[float] = []
    accepted_ids: set[tuple[str, str]] = set()
    for a in sending.accepted:
        accepted_ids.update((a.recipient, key) for key in candidate_keys(a.sender, a.id))
        row = find(incoming[a.recipient], a.sender, a.id)
        if row is None:
            lost += 1
            example("lost", f"#{a.index} {a.sender}->{a.recipient} id {a.id} seq {a.seq}")
        else:
            if row["author"] != a.sender or row["peer"] != a.sender:
                wrong_author += 1
                example("wrong_author", f"{a.id}: author {row['author']}, peer {row['peer']}")
            if int(row["seq"]) != a.seq:
                out_of_order += 1
                example("out_of_order", f"{a.id}: seq {row['seq']} at recipient, {a.seq} sent")
            if row["received_at"] is not None:
                delivery_s.append(max(0.0, float(row["received_at"]) - a.sent_at))
        home = find(outgoing[a.sender], a.sender, a.id)
        state = "missing" if home is None else str(home["state"])
        states[state] += 1
        if state not in RECEIPT_STATES:
            without_receipt += 1
            example("without_receipt", f"{a.id} {a.sender}->{a.recipient}: {state}")

    # Each text at most once at its recipient (a resent copy under a new id would be a duplicate).
    extra_stored = unexplained = 0
    accepted_texts = {a.text for a in sending.accepted}
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for name in names:
        by_text: Counter[str] = Counter()
        for key, row in incoming[name].items():
            text = str(json.loads(row["body"]).get("text", ""))
            by_text[text] += 1
            pairs[(row["author"], name)].append(int(row["seq"]))
            if (name, key) not in accepted_ids:
                if text in sending.maybe_stored and text not in accepted_texts:
                    extra_stored += 1  # a POST cut by a kill, committed all the same: fine
                else:
                    unexplained += 1
                    example("unexplained", f"at {name}: {key} {text[:40]!r}")
        for text, count in by_text.items():
            if count > 1:
                duplicated += count - 1
                example("duplicated", f"at {name}: {count} times {text[:40]!r}")

    # Per pair, the recipient holds seqs 1..n exactly (no gap, no repeat), n = what the sender
    # sent that recipient (every outgoing message counts, acknowledged to this harness or not).
    gaps = 0
    for sender in names:
        for recipient in names:
            if sender == recipient:
                continue
            sent = sorted(
                int(r["seq"]) for r in outgoing[sender].values() if r["peer"] == recipient
            )
            got = sorted(pairs.get((sender, recipient), []))
            if got != sent or sent != list(range(1, len(sent) + 1)):
                gaps += 1
                example(
                    "sequence",
                    f"{sender}->{recipient}: sender has {len(sent)} (max "
                    f"{sent[-1] if sent else 0}), recipient {len(got)} distinct "
                    f"{len(set(got))} (max {got[-1] if got else 0})",
                )
    delivered = len(sending.accepted) - lost
    counts: dict[str, Any] = {
        "accepted": len(sending.accepted),
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order + gaps,
        "without_receipt": without_receipt,
        "wrong_author": wrong_author,
        "unexplained": unexplained,
        "stored_without_answer": extra_stored,
        "sender_states": dict(sorted(states.items())),
        "sequence_problems": gaps,
    }
    if not receipts:
        counts["without_receipt_not_required"] = without_receipt
    return Verdict(counts, delivery_s, dict(examples))


async def check_ui_order(
    cluster: Cluster, snapshot: Snapshot, examples: dict[str, list[str]]
) -> int:
    """Each recipient's UI lists each sender's messages in seq order, all of them. Returns the
    number of conversations listed out of order or incompletely."""
    bad = 0
    for name, node in cluster.nodes.items():
        incoming = snapshot.incoming(name)
        for peer in cluster.nodes:
            if peer == name:
                continue
            expected = sorted(int(r["seq"]) for r in incoming.values() if r["author"] == peer)
            if not expected:
                continue
            pages = (len(snapshot.rows[name]) // 200) + 5
            listed = await ui_listing_seqs(node, peer, pages)
            if listed != expected:
                bad += 1
                inversions = sum(1 for a, b in itertools.pairwise(listed) if b <= a)
                if len(examples.setdefault("ui_order", [])) < EXAMPLES:
                    examples["ui_order"].append(
                        f"{name} lists {peer}'s {len(listed)} messages with {inversions} "
                        f"inversions (database holds {len(expected)})"
                    )
    return bad


# --- the command ------------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> None:
    counts, params, faults = result["counts"], result["params"], result["faults"]
    ms = result["delivery_ms"]
    rows = [
        (
            "cluster",
            f"directory + {params['daemons']} daemons, seed {params['seed']}, "
            f"{params['messages']} messages over {params['sending_s']:.0f} s",
        ),
        (
            "faults",
            ", ".join(f"{kind} {faults['by_type'][kind]}" for kind in FAULT_KINDS)
            + f" (proxies cut {faults['connections_cut']}, refused {faults['connections_refused']})",
        ),
        (
            "accepted",
            f"{counts['accepted']} (refused while the sender was down: "
            f"{result['sending']['refused_down']}, skipped {result['sending']['skipped']})",
        ),
        ("delivered", str(counts["delivered"])),
        ("lost", str(counts["lost"])),
        ("duplicated", str(counts["duplicated"])),
        ("out of order", str(counts["out_of_order"])),
        (
            "without receipt",
            f"{counts['without_receipt']}"
            + ("" if params["receipts_required"] else " (not required: --no-receipts)"),
        ),
        ("sender states", ", ".join(f"{k} {v}" for k, v in counts["sender_states"].items())),
        (
            "stored, no answer",
            f"{counts['stored_without_answer']} (POST cut by a kill, committed all the same)",
        ),
        ("quiescence", f"{result['quiescence_s']:.1f} s after the faults stopped"),
        (
            "degraded mode",
            f"{faults['degraded_seen']} of {faults['degraded_possible']} daemon UIs said "
            "'degraded' at the end of directory outages",
        ),
        ("errors in logs", f"{len(result['log_errors'])}"),
        *(
            ("", f"{count} x {text}")
            for text, count in Counter(
                e.split(": ", 1)[-1] for e in result["log_errors"]
            ).most_common(3)
        ),
        (
            "send -> delivered",
            f"p50 {ms['p50']:.0f} ms, p90 {ms['p90']:.0f} ms, p99 {ms['p99']:.0f} ms, "
            f"max {ms['max']:.0f} ms",
        ),
        ("result", "ok" if result["ok"] else "FAILED: " + "; ".join(result["problems"])),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    print("Flame chaos (loopback, real processes)")
    print("=" * 38)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(flush=True)


async def run_chaos(args: argparse.Namespace) -> int:
    """`flame chaos`. SIGTERM or SIGHUP stop it as Ctrl-C does: every process and proxy it
    started is stopped before it returns."""
    return await stoppable("chaos", _run_chaos(args))


async def _run_chaos(args: argparse.Namespace) -> int:
    messages = int(getattr(args, "messages", 2000))
    daemons = int(getattr(args, "daemons", 5))
    seed_arg = getattr(args, "seed", None)
    seed = int(seed_arg) if seed_arg is not None else random.SystemRandom().randrange(1 << 31)
    total_faults = int(getattr(args, "faults", 12))
    rate = float(getattr(args, "rate", DEFAULT_RATE))
    receipts = not bool(getattr(args, "no_receipts", False))
    json_path = Path(getattr(args, "json", "chaos-results.json"))
    settle_arg = getattr(args, "settle_timeout", None)
    settle_s = float(settle_arg) if settle_arg is not None else 60.0 + messages * 0.03
    keep_dir = getattr(args, "dir", None)
    if messages < 1 or total_faults < 0 or rate <= 0 or settle_s <= 0:
        raise ChaosFailed(
            "--messages, --rate and --settle-timeout must be positive, --faults >= 0."
        )
    if not 2 <= daemons <= len(NAMES):
        raise ChaosFailed(f"--daemons must be between 2 and {len(NAMES)}.")
    names = NAMES[:daemons]
    plan_rng = random.Random(f"{seed}:plan")
    fault_rng = random.Random(f"{seed}:faults")
    plan = [Planned(i, *pair) for i, pair in enumerate(pick_pairs(plan_rng, names, messages))]
    counts = fault_counts(total_faults, fault_rng)
    duration_s = sending_duration(messages, rate, counts)
    env = cluster_env()
    begun = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - begun:6.1f} s] {line}", flush=True)

    if keep_dir is not None:
        root = Path(keep_dir).resolve()
        if root.exists() and any(root.iterdir()):
            raise ChaosFailed(f"--dir {root} is not empty: the harness needs a fresh cluster.")
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="flame-chaos-"))
    progress(f"directory and {', '.join(names)} in {root} (seed {seed})")
    sending = Sending()
    faults = Faults()
    ok = False
    try:
        cluster = await start_cluster(root, names, env)
        try:
            result = await _exercise(
                cluster,
                plan,
                sending,
                faults,
                counts,
                duration_s,
                fault_rng,
                receipts,
                settle_s,
                progress,
            )
        except Exception:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            stopped = await cluster.stop()
        result["exit_codes"] = stopped
        unclean = {name: code for name, code in stopped.items() if code != 0}
        if unclean:
            result["problems"].append(f"not stopped cleanly by SIGTERM: {unclean}")
            result["ok"] = False
        ok = bool(result["ok"])
    finally:
        if keep_dir is None and ok:
            shutil.rmtree(root, ignore_errors=True)
        elif keep_dir is None:
            print(f"Kept the cluster's folder for a look: {root}", file=sys.stderr)
    result["params"] = {
        "messages": messages,
        "daemons": daemons,
        "names": list(names),
        "seed": seed,
        "faults": total_faults,
        "rate_per_s": round(messages / duration_s, 2),
        "sending_s": round(duration_s, 1),
        "receipts_required": receipts,
        "settle_timeout_s": settle_s,
        "env": env,
    }
    result["total_s"] = round(time.monotonic() - begun, 1)
    result = {"version": JSON_VERSION, **result}
    print_report(result)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {json_path} (total {result['total_s']:.1f} s).")
    return 0 if result["ok"] else 1


async def _exercise(
    cluster: Cluster,
    plan: list[Planned],
    sending: Sending,
    faults: Faults,
    counts: dict[str, int],
    duration_s: float,
    fault_rng: random.Random,
    receipts: bool,
    settle_s: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    await wait_all_known(cluster, READY_TIMEOUT_S)
    progress(
        f"everyone online; sending {len(plan)} messages over {duration_s:.0f} s with faults "
        + ", ".join(f"{kind} x{n}" for kind, n in counts.items())
    )
    faults_over = asyncio.Event()
    phase_begun = time.monotonic()

    async def faults_then_heal() -> None:
        try:
            await run_faults(cluster, counts, duration_s, fault_rng, faults, phase_begun, progress)
        finally:
            faults_over.set()

    fault_task = asyncio.create_task(faults_then_heal())

    def fault_failed() -> bool:
        return fault_task.done() and not fault_task.cancelled() and bool(fault_task.exception())

    try:
        await send_all(
            cluster, plan, sending, duration_s, faults_over.is_set, fault_failed, progress
        )
        await fault_task
    finally:
        if not fault_task.done():
            fault_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fault_task
    await ensure_all_up(cluster, faults)
    progress(
        f"faults over: {len(sending.accepted)} accepted; waiting for quiescence "
        f"(at most {settle_s:.0f} s)"
    )
    quiet, quiescence_s = await wait_quiet(cluster, sending.accepted, receipts, settle_s, progress)
    snapshot = await Snapshot.take(cluster)
    holdings = {
        name: await asyncio.to_thread(relay_holdings, node.db_path)
        for name, node in cluster.nodes.items()
    }
    verdict = check(snapshot, sending, receipts)
    ui_bad = await check_ui_order(cluster, snapshot, verdict.examples)
    verdict.counts["out_of_order"] += ui_bad
    verdict.counts["ui_order_problems"] = ui_bad
    c = verdict.counts
    problems = [
        f"{c[key]} {label}"
        for key, label in (
            ("lost", "lost"),
            ("duplicated", "duplicated"),
            ("out_of_order", "out of order"),
            ("wrong_author", "with the wrong author"),
            ("unexplained", "unexplained messages at recipients"),
        )
        if c[key]
    ]
    if receipts and c["without_receipt"]:
        problems.append(f"{c['without_receipt']} without receipt")
    if sending.errors:
        problems.append(f"{len(sending.errors)} unexpected answers to sends")
    if sending.skipped:
        problems.append(f"{len(sending.skipped)} messages never accepted")
    if not quiet:
        problems.append(f"not quiet within {settle_s:.0f} s")
    problems.extend(faults.problems)
    log_problems = cluster.log_problems()
    missing_kinds = [kind for kind in FAULT_KINDS if counts[kind] and not faults.count(kind)]
    if missing_kinds:
        problems.append(f"faults not injected: {', '.join(missing_kinds)}")
    return {
        "ok": not problems,
        "problems": problems,
        "counts": c,
        "sending": {
            "planned": len(plan),
            "refused_down": sending.refused_down,
            "relogins": sending.relogins,
            "skipped": len(sending.skipped),
            "maybe_stored": len(sending.maybe_stored),
            "errors": sending.errors[:EXAMPLES],
        },
        "faults": {
            "by_type": {kind: faults.count(kind) for kind in FAULT_KINDS},
            "connections_cut": sum(n.proxy.cut for n in cluster.nodes.values()),
            "connections_refused": sum(n.proxy.refused for n in cluster.nodes.values()),
            "degraded_seen": sum(e.get("daemons_degraded", 0) for e in faults.log),
            "degraded_possible": faults.count("directory_kill") * len(cluster.nodes),
            "log": faults.log,
        },
        "quiet": quiet,
        "quiescence_s": round(quiescence_s, 2),
        "delivery_ms": summary_ms(verdict.delivery_s),
        "held_at_end": holdings,
        "examples": verdict.examples,
        "log_errors": log_problems[:200],
        "relay_log_lines": cluster.count_log_lines("relay"),
    }


__all__ = ["FaultProxy", "run_chaos"]

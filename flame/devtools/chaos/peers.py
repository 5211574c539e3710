"""The chaos harness's cluster: a directory and daemons as processes (flame/devtools/cluster.py),
each daemon behind its own FaultProxy, with the settings that make faults noticed and healed in
seconds. A restarted process keeps its ports, so its address stays what peers know."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flame.config import Settings
from flame.devtools.chaos.proxy import FaultProxy
from flame.devtools.cluster import Cluster, Node, start_processes
from flame.devtools.procs import Proc
from flame.devtools.ui import UiClient

SEND_CONCURRENCY = 16  # POSTs in flight at most
REQUEST_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 30.0

# Short intervals so that faults are noticed and healed in seconds. Cheap Argon2 at `flame init`
# only (the cost is stored with the keys).
DAEMON_ENV = {
    "FLAME_DAEMON_PRESENCE_INTERVAL_S": "0.5",
    "FLAME_DAEMON_DIRECTORY_SYNC_S": "0.5",
    "FLAME_DIRECTORY_PRESENCE_TTL_S": "2",
    "FLAME_DAEMON_RETRY_BASE_S": "0.2",
    "FLAME_DAEMON_RETRY_MAX_S": "2",
    "FLAME_DAEMON_REQUEST_TIMEOUT_S": "5",
    "FLAME_SECURITY_LOGIN_BURST": "1000",
}
# The harness's daemons speak version 2 only (PROTOCOL.md §14.2): a first message while the
# directory is down is refused (503 `no_session`, sent again by the harness) rather than sent as
# version 1, so every text must travel inside a session, and the check says so (checks.py).
VERSION_2_ONLY = {"FLAME_SECURITY_MIN_VERSION": "2"}
# Settings that may or may not exist in this version (relays, degraded mode): set only when the
# settings model knows them, since an unknown FLAME_* variable is a configuration error.
OPTIONAL_ENV = {
    "FLAME_DAEMON_RELAY_AFTER_S": "1",
    "FLAME_DAEMON_RELAY_RETRY_S": "1",
    "FLAME_DAEMON_PROBE_INTERVAL_S": "0.5",
}
# Cheap Argon2 for a fast start: test-only, hence allow_weak_kdf (real accounts refuse it).
INIT_ENV = {
    "FLAME_SECURITY_ARGON2_MEMORY_KIB": "1024",
    "FLAME_SECURITY_ARGON2_ITERATIONS": "1",
    "FLAME_SECURITY_ALLOW_WEAK_KDF": "true",
}


def known_setting(env_name: str) -> bool:
    """Whether FLAME_<SECTION>_<KEY> names a setting of this version of Flame."""
    section, _, key = env_name.removeprefix("FLAME_").lower().partition("_")
    section_field = Settings.model_fields.get(section)
    model = section_field.annotation if section_field is not None else None
    return isinstance(model, type) and issubclass(model, BaseModel) and key in model.model_fields


def cluster_env() -> dict[str, str]:
    optional = {k: v for k, v in OPTIONAL_ENV.items() if known_setting(k)}
    return {**{k: v for k, v in DAEMON_ENV.items() if known_setting(k)}, **optional}


@dataclass
class Peer:
    """One daemon of the harness: its process and UI tab, the proxy in front of its peer port,
    whether it is up (not being killed), and the lock its kill, restart and new login take."""

    node: Node
    proxy: FaultProxy
    up: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def ui(self) -> UiClient | None:
        return self.node.ui


@dataclass
class Chaos:
    cluster: Cluster
    peers: dict[str, Peer]

    @property
    def directory(self) -> Proc:
        assert self.cluster.directory_proc is not None
        return self.cluster.directory_proc

    def procs(self) -> list[Proc]:
        return self.cluster.procs()

    async def stop(self) -> dict[str, Any]:
        """Every process and proxy stopped; the processes' exit codes."""
        for peer in self.peers.values():
            peer.up = False
        try:
            return await self.cluster.stop_processes()
        finally:
            await asyncio.gather(*(p.proxy.stop() for p in self.peers.values()))


async def start_chaos(root: Path, names: tuple[str, ...], env: Mapping[str, str]) -> Chaos:
    """The directory and the daemons started, each daemon advertising its proxy as its public
    address, and logged in."""
    proxies: dict[str, FaultProxy] = {}

    async def behind_proxy(name: str) -> dict[str, str]:
        proxy = proxies[name] = FaultProxy(name)
        await proxy.start()
        return {"FLAME_DAEMON_PUBLIC_ADDRESS": proxy.url}

    try:
        cluster = await start_processes(
            root,
            names,
            env,
            INIT_ENV,
            env_for=behind_proxy,
            timeout_s=REQUEST_TIMEOUT_S,
            connections=SEND_CONCURRENCY + 4,
        )
    except BaseException:
        await asyncio.gather(*(proxy.stop() for proxy in proxies.values()))
        raise
    peers = {}
    for name, node in cluster.nodes.items():
        proxies[name].target_port = node.peer_port  # bound now, and kept across restarts
        peers[name] = Peer(node, proxies[name], up=True)
    return Chaos(cluster, peers)

"""The one launcher of the dev tools (demo, bench, chaos) and the tests: a directory and daemons on
loopback, each with its own data folder, enrolled, unlocked, logged in through the UI API and
knowing each other. Two kinds of node, which one cluster may mix:

- in the caller's event loop (`start_directory`, `add_user`): `Daemon` objects a test can look
  inside, with real SQLite files and real crypto; nothing of Flame's own is mocked;
- real `flame` processes (`start_directory_process`, `add_process`, `start_processes`), each in a
  session of its own: what demo, bench, chaos and the crash tests need (kill -9 and restart).

No port is ever picked by binding and releasing it: every listener binds what it is given (0: the
OS picks one) and the launcher learns the port from the object, or from the process's
`--ready-file`. A process started again (after a kill -9 too) gets back the ports it had.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame.config import Settings, load_settings
from flame.daemon import Daemon
from flame.devtools.procs import READY_TIMEOUT_S, Proc, daemon_proc, directory_proc, init_user
from flame.devtools.ui import PASSWORD, ToolFailed, UiClient
from flame.directory.app import DirectoryServer
from flame.services.account import init_account

# Short intervals and cheap Argon2 for the tests' clusters (dotted setting names).
FAST: dict[str, Any] = {
    "daemon.presence_interval_s": 0.2,
    "daemon.directory_sync_s": 0.2,
    "daemon.retry_base_s": 0.05,
    "daemon.probe_interval_s": 0.2,
    "daemon.retry_max_s": 0.5,
    "daemon.request_timeout_s": 5,
    "security.argon2_memory_kib": 64,
    "security.argon2_iterations": 1,
    "security.allow_weak_kdf": True,  # test-only: real accounts refuse this cost
    "directory.presence_ttl_s": 2.0,
}


def env_of(settings: Mapping[str, Any]) -> dict[str, str]:
    """Dotted settings as the FLAME_<SECTION>_<KEY> variables a process reads."""
    return {f"FLAME_{key.replace('.', '_').upper()}": str(value) for key, value in settings.items()}


def fast_settings(data_dir: Path, directory_url: str, **daemon: Any) -> Settings:
    """Settings for tests: ports picked by the OS, cheap Argon2, short intervals."""
    flags: dict[str, Any] = {
        "daemon.data_dir": str(data_dir),
        "daemon.directory_url": directory_url,
        "daemon.peer_host": "127.0.0.1",
        "daemon.peer_port": 0,
        "daemon.ui_port": 0,
        **FAST,
    }
    # `limits__peer_burst_per_sender=5` sets limits.peer_burst_per_sender; plain names: [daemon].
    flags.update(
        {
            key.replace("__", ".") if "__" in key else f"daemon.{key}": value
            for key, value in daemon.items()
        }
    )
    return load_settings(None, flags=flags, environ={}, read_default_file=False)


# --- daemons as processes -----------------------------------------------------------------------


@dataclass
class Node:
    """A daemon running as its own process, and a browser tab on it once logged in."""

    name: str
    proc: Proc
    password: str
    timeout_s: float = 30.0  # of each UI request
    connections: int = 40  # UI requests in flight at most
    ui: UiClient | None = None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.proc.ports['ui_port']}"

    @property
    def peer_port(self) -> int:
        return self.proc.ports["peer_port"]

    async def login(self) -> UiClient:
        """A new UI session (sessions live in the daemon's memory: a restart forgets them)."""
        await self.close()
        self.ui = UiClient(
            self,
            self.password,
            timeout_s=self.timeout_s,
            connections=self.connections,
            name=self.name,
        )
        await self.ui.login_within(READY_TIMEOUT_S)
        return self.ui

    async def close(self) -> None:
        if self.ui is not None:
            await self.ui.close()
            self.ui = None


# --- the cluster ----------------------------------------------------------------------------------


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory: DirectoryServer | None = None  # in this event loop, or
        self.directory_proc: Proc | None = None  # as a process
        self.daemons: dict[str, Daemon] = {}  # in this event loop
        self.nodes: dict[str, Node] = {}  # as processes
        self.clients: list[UiClient] = []

    @property
    def directory_url(self) -> str:
        if self.directory_proc is not None:
            return f"http://127.0.0.1:{self.directory_proc.ports['port']}"
        assert self.directory is not None
        return self.directory.url

    async def start_directory(
        self, registration: str = "open", ttl_s: float = 2.0, port: int = 0, **directory: Any
    ) -> DirectoryServer:
        settings = load_settings(
            None,
            environ={},
            read_default_file=False,
            flags={
                "directory.host": "127.0.0.1",
                "directory.port": port,
                "directory.registration": registration,
                "directory.presence_ttl_s": ttl_s,
                # Test daemons poll every 0.2 s, all from 127.0.0.1: far above real rates.
                "directory.rate_per_address": 10_000.0,
                "directory.burst_per_address": 10_000,
                "directory.rate_per_user": 1_000.0,
                "directory.burst_per_user": 1_000,
                **{f"directory.{key}": value for key, value in directory.items()},
            },
        )
        self.directory = DirectoryServer(settings.directory, self.root / "directory")
        await self.directory.start()
        return self.directory

    def settings_for(self, name: str, **daemon: Any) -> Settings:
        directory_url = daemon.pop("directory_url", self.directory_url)
        return fast_settings(self.root / name, directory_url, **daemon)

    async def enroll(
        self, name: str, invite: str | None = None, folder: str | None = None, **daemon: Any
    ) -> Settings:
        settings = self.settings_for(folder or name, **daemon)
        directory_url = settings.daemon.directory_url
        data_dir = settings.daemon_data_dir()
        await init_account(settings, name, directory_url, invite, PASSWORD, data_dir)
        return settings

    async def start_daemon(
        self, name: str, *, unlocked: bool = True, settings: Settings | None = None, **daemon: Any
    ) -> Daemon:
        settings = settings or self.settings_for(name, **daemon)
        node = Daemon(settings)
        await node.start(PASSWORD if unlocked else None)
        self.daemons[name] = node
        return node

    async def add_user(self, name: str, **daemon: Any) -> Daemon:
        settings = await self.enroll(name, **daemon)
        return await self.start_daemon(name, settings=settings)

    async def ui(self, name: str, login: bool = True) -> UiClient:
        client = UiClient(self.daemons[name])
        self.clients.append(client)
        if login:
            await client.login()
        return client

    async def stop_daemon(self, name: str) -> None:
        await self.daemons.pop(name).stop()

    async def start_directory_process(
        self, env: Mapping[str, str] | None = None, port: int = 0
    ) -> Proc:
        self.directory_proc = directory_proc(self.root, port, "open", self.process_env(env))
        await self.directory_proc.start()
        return self.directory_proc

    async def add_process(
        self,
        name: str,
        env: Mapping[str, str] | None = None,
        *,
        ports: tuple[int, int] = (0, 0),
        start: bool = True,
    ) -> Node:
        """Enroll `name` with `flame init` and (unless `start=False`) run `flame serve` on these
        (peer, UI) ports, 0 for any."""
        env = self.process_env(env)
        password = await init_user(self.root, name, self.directory_url, env)
        proc = daemon_proc(self.root, name, self.directory_url, env, ports)
        node = self.nodes[name] = Node(name, proc, password)
        if start:
            await proc.start()
        return node

    def process_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """`env`, and the user's own config file and data folders out of the way."""
        isolated = {"XDG_CONFIG_HOME": self.root / "config", "XDG_DATA_HOME": self.root / "data"}
        return {**{k: str(v) for k, v in isolated.items()}, **(env or {})}

    def procs(self) -> list[Proc]:
        daemons = [n.proc for n in self.nodes.values()]
        return daemons if self.directory_proc is None else [self.directory_proc, *daemons]

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(filter(None, (proc.log_tail(lines) for proc in self.procs())))

    async def stop_processes(self) -> dict[str, Any]:
        """SIGTERM to every process (SIGKILL after 10 s), the daemons first; their exit codes
        (-9: it had to be killed, -15: it died of the SIGTERM instead of handling it)."""
        await asyncio.gather(*(n.close() for n in self.nodes.values()), return_exceptions=True)
        codes = await asyncio.gather(
            *(n.proc.stop() for n in self.nodes.values()), return_exceptions=True
        )
        stopped: dict[str, Any] = {}
        if self.directory_proc is not None:
            stopped["directory"] = await self.directory_proc.stop()
        for name, code in zip(self.nodes, codes, strict=True):
            stopped[name] = code if isinstance(code, int | None) else repr(code)
        return stopped

    async def close(self) -> None:
        """Stop everything, each part even if another fails to stop."""
        try:
            await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
            results = await asyncio.gather(
                *(_bounded_stop(d) for d in self.daemons.values()), return_exceptions=True
            )
            self.daemons.clear()
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
        finally:
            await self.stop_processes()
            if self.directory is not None:
                await self.directory.stop()


async def _bounded_stop(daemon: Daemon) -> None:
    """Stop a daemon; if it takes more than 30 s, show every task's stack (a hang is a bug)."""
    task = asyncio.ensure_future(daemon.stop())
    done, _ = await asyncio.wait({task}, timeout=30)
    if not done:
        for other in asyncio.all_tasks():
            other.print_stack(limit=8)
        task.cancel()
        raise AssertionError("a daemon did not stop within 30 s")
    task.result()


async def cluster_context() -> AsyncIterator[Cluster]:
    # A short root: the directory's admin socket path must fit AF_UNIX's limit.
    with tempfile.TemporaryDirectory(prefix="flame-") as root:
        cluster = Cluster(Path(root))
        try:
            yield cluster
        finally:
            await cluster.close()


async def start_processes(
    root: Path,
    names: tuple[str, ...],
    env: Mapping[str, str],
    init_env: Mapping[str, str],
    *,
    env_for: Callable[[str], Awaitable[Mapping[str, str]]] | None = None,
    **node: Any,
) -> Cluster:
    """A directory and a daemon per name as processes, all enrolled (in parallel), started and
    logged in. `env_for(name)` adds to one daemon's environment; `node` sets Node fields (the
    UI's timeout and connections)."""
    cluster = Cluster(root)
    env = cluster.process_env(env)
    try:
        await cluster.start_directory_process(env)
        url = cluster.directory_url
        passwords = await asyncio.gather(
            *(init_user(root, name, url, {**env, **init_env}) for name in names)
        )
        for name, password in zip(names, passwords, strict=True):
            own = {**env, **(await env_for(name) if env_for is not None else {})}
            cluster.nodes[name] = Node(name, daemon_proc(root, name, url, own), password, **node)
        await asyncio.gather(*(n.proc.start() for n in cluster.nodes.values()))
        await asyncio.gather(*(n.login() for n in cluster.nodes.values()))
    except BaseException as exc:
        if isinstance(exc, Exception):
            print(cluster.log_tails(), file=sys.stderr)
        await cluster.close()
        if isinstance(exc, RuntimeError):
            raise ToolFailed(f"The cluster did not start: {exc}") from exc
        raise
    return cluster


async def wait_known(cluster: Cluster, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Every process node sees every other one online (the directory told each about all)."""
    for name, node in cluster.nodes.items():
        assert node.ui is not None
        await node.ui.wait_online(set(cluster.nodes) - {name}, timeout_s)


async def stoppable(name: str, work: Coroutine[Any, Any, int]) -> int:
    """Run a harness (bench, chaos) so that SIGTERM or SIGHUP stop it as Ctrl-C does: its own
    cleanup runs, and with it the stop of every process it started (they run in sessions of their
    own, so no signal reaches them). Returns 128 + the signal when stopped."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    signalled: list[int] = []

    def stop(sig: int) -> None:
        signalled.append(sig)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await work
    except asyncio.CancelledError:
        if not signalled:
            raise
        task.uncancel()  # our own cancellation, from the signal handler
        print(f"flame {name}: stopped by {signal.Signals(signalled[0]).name}.", file=sys.stderr)
        return 128 + signalled[0]
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)

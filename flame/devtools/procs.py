"""One `flame` process of a cluster (flame/devtools/cluster.py): its command line, its log, its
start (until its --ready-file says its listeners are bound), its stop and kill -9; and `flame init`
as a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flame.core.encoding import b64e
from flame.core.transport import Endpoint, parse_fingerprint
from flame.store.folder import write_private

READY_TIMEOUT_S = 30.0
PORT_TAKEN = "the port is already in use"  # the one line flame prints then (net/server.py)
PORT_TRIES, PORT_PAUSE_S = 10, 0.5


@dataclass
class Proc:
    """`python -m flame <command>` in a session of its own, logging into its data folder. `ports`
    maps port flags to ports (`{"peer_port": 0}` is `--peer-port 0`): 0 lets the OS pick at the
    first start, whose --ready-file tells what it picked; restarts then ask for the same."""

    name: str
    command: list[str]
    ports: dict[str, int]
    env: dict[str, str]
    folder: Path
    log_name: str
    process: asyncio.subprocess.Process | None = None
    ready: dict[str, Any] = field(default_factory=dict)  # what its ready file said
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.folder / self.log_name

    @property
    def ready_path(self) -> Path:
        return self.folder / "ready.json"

    @property
    def tls(self) -> bytes | None:
        """The fingerprint of the certificate it serves (None: plain HTTP), from its ready file."""
        text = self.ready.get("tls")
        return None if text is None else parse_fingerprint(text)

    @property
    def url(self) -> str:
        """Its peer (or directory) listener's base URL on loopback."""
        scheme = "http" if self.ready.get("tls") is None else "https"
        port = self.ports.get("peer_port", self.ports.get("port"))
        return f"{scheme}://127.0.0.1:{port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def args(self) -> list[str]:
        flags = [f"--{key.replace('_', '-')}={port}" for key, port in self.ports.items()]
        return [*self.command, *flags, "--ready-file", str(self.ready_path)]

    async def start(self) -> None:
        """Start it, on the ports it had if it ran before. Such a port, free since it stopped, may
        meanwhile be the local end of some outgoing connection on this machine (the OS hands out
        the same range): then it is asked for again a few times while that connection ends."""
        for attempt in range(PORT_TRIES):
            try:
                await self._start_once()
                return
            except RuntimeError:
                taken = PORT_TAKEN in self.log_tail(3)
                if not taken or not any(self.ports.values()) or attempt == PORT_TRIES - 1:
                    raise
            await self.stop()  # it has exited: this closes its log
            await asyncio.sleep(PORT_PAUSE_S)

    async def _start_once(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ready_path.unlink(missing_ok=True)
        self.log_file = open(self.log_path, "ab")  # closed by stop()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flame",
            *self.args(),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=self.log_file,
            start_new_session=True,
        )
        await self.wait_ready()

    async def wait_ready(self) -> None:
        """Until the process has written its ready file (its listeners are bound)."""
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while True:
            assert self.process is not None
            with contextlib.suppress(FileNotFoundError, ValueError):
                ready = json.loads(self.ready_path.read_text())
                if ready.get("pid") == self.process.pid:
                    self.ports = {key: int(ready[key]) for key in self.ports}
                    self.ready = ready
                    return
            if self.process.returncode is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")
            await asyncio.sleep(0.02)

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int | None:
        """Signal it and wait (SIGKILL after `timeout_s`); its exit code (-9: killed)."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        return None if process is None else process.returncode

    async def kill(self) -> None:
        """kill -9: no cleanup at all, as a crash or power cut would leave it."""
        await self.stop(signal.SIGKILL)

    def log_tail(self, lines: int) -> str:
        with contextlib.suppress(OSError):
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            return f"--- {self.name} ({self.log_path}) ---\n" + "\n".join(tail)
        return ""


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without any FLAME_ setting of the user's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_")}
    env.update(extra)
    return env


def directory_proc(
    root: Path,
    port: int = 0,
    registration: str = "open",
    env: Mapping[str, str] | None = None,
    name: str = "directory",
) -> Proc:
    """`flame directory serve` with its data in `root / name`."""
    data = root / name
    command = ["directory", "serve", "--data-dir", str(data), "--host", "127.0.0.1"]
    env = base_env({"FLAME_DIRECTORY_REGISTRATION": registration, **(env or {})})
    return Proc(name, command, {"port": port}, env, data, "directory.log")


def daemon_proc(
    root: Path,
    name: str,
    directory_url: str,
    env: Mapping[str, str] | None = None,
    ports: tuple[int, int] = (0, 0),
) -> Proc:
    """`flame serve` for `name`, unlocked with the password its `init_user` wrote."""
    data = root / name
    command = ["serve", "--data-dir", str(data), "--password-file", str(data / "password")]
    command += ["--peer-host", "127.0.0.1", "--directory", directory_url]
    ports_by_flag = {"peer_port": ports[0], "ui_port": ports[1]}
    return Proc(name, command, ports_by_flag, base_env(env or {}), data, "daemon.log")


async def init_user(
    root: Path, name: str, directory: Endpoint, env: Mapping[str, str] | None = None
) -> str:
    """`flame init` for `name` (open registration, the directory's certificate pinned) unless
    already done; returns the password."""
    data = root / name
    password_file = data / "password"
    if (data / "keystore.json").exists() and password_file.exists():
        return password_file.read_text().strip()
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = "-".join(secrets.token_hex(3) for _ in range(3))
    write_private(password_file, (password + "\n").encode())  # 0600: `flame` refuses others
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flame",
        "init",
        "--username",
        name,
        "--directory",
        directory.url,
        # One argument with "=": a fingerprint may start with "-".
        *([] if directory.tls is None else [f"--directory-fingerprint={b64e(directory.tls)}"]),
        "--password-file",
        str(password_file),
        "--data-dir",
        str(data),
        env=base_env(env or {}),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"flame init {name} failed: {output.decode(errors='replace')}")
    return password

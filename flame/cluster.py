"""Real processes on loopback: a directory and `flame serve` daemons, for the demo, the benchmark
and the tests that kill and restart processes. Each runs `python -m flame` with its own data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

READY_TIMEOUT_S = 30.0


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    ready_url: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    log_file: object | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.log_file = log
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flame",
            *self.args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        await self.wait_ready()

    async def wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.ready_url) as response:
                        if response.status == 200:
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")
                await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int | None:
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
            self.log_file.close()  # type: ignore[attr-defined]
            self.log_file = None
        return None if process is None else process.returncode

    async def kill(self) -> None:
        """kill -9: no cleanup at all, as a crash or power cut would leave it."""
        await self.stop(signal.SIGKILL)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_")}
    env.update(extra)
    return env


def directory_proc(
    root: Path, port: int, registration: str = "open", extra_env: dict[str, str] | None = None
) -> Proc:
    data = root / "directory"
    env = base_env({"FLAME_DIRECTORY_REGISTRATION": registration, **(extra_env or {})})
    return Proc(
        "directory",
        ["directory", "serve", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/dir/v1/hello",
        data / "directory.log",
    )


def daemon_proc(
    root: Path,
    name: str,
    peer_port: int,
    ui_port: int,
    directory_url: str,
    extra_env: dict[str, str] | None = None,
) -> Proc:
    data = root / name
    env = base_env(extra_env or {})
    return Proc(
        name,
        [
            "serve",
            "--data-dir",
            str(data),
            "--password-file",
            str(data / "password"),
            "--peer-host",
            "127.0.0.1",
            "--peer-port",
            str(peer_port),
            "--ui-port",
            str(ui_port),
            "--directory",
            directory_url,
        ],
        env,
        f"http://127.0.0.1:{peer_port}/api/v1/hello",
        data / "daemon.log",
    )


async def init_user(
    root: Path, name: str, directory_url: str, extra_env: dict[str, str] | None = None
) -> str:
    """Enroll `name` (open registration) unless already done; returns the password."""
    data = root / name
    password_file = data / "password"
    if (data / "flame.db").exists() and password_file.exists():
        return password_file.read_text().strip()
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = "-".join(secrets.token_hex(3) for _ in range(3))
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flame",
        "init",
        "--username",
        name,
        "--directory",
        directory_url,
        "--password-file",
        str(password_file),
        "--data-dir",
        str(data),
        env=base_env(extra_env or {}),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"flame init {name} failed: {output.decode(errors='replace')}")
    return password


async def stoppable(name: str, work: Coroutine[Any, Any, int]) -> int:
    """Run a harness (`flame bench`, `flame chaos`) so that SIGTERM or SIGHUP stop it as Ctrl-C
    does: its own cleanup runs, and with it the stop of every process it started (they run in
    sessions of their own, so no signal reaches them). Returns 128 + the signal when stopped."""
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

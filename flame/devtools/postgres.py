"""A throwaway PostgreSQL server for the tests and the benchmark: `initdb` in a fresh temporary
folder, one loopback port, trust authentication for its one user, stopped (and the folder
removed) at the end. Uses Debian's `postgresql` package (`.ci/run` installs it when missing);
as root, the server runs as the `postgres` account, which PostgreSQL requires."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "flame"


def bin_dir() -> Path | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    folder: Path
    port: int
    bin: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def run(self, *command: str) -> None:
        subprocess.run(as_server_user([str(self.bin / command[0]), *command[1:]]), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server, every connection cut, its folder kept (an outage; `start` again)."""
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def start(self, *, durable: bool = False) -> None:
        """`durable` False: no fsync (a test server; the benchmark asks for True)."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        options += " -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = str(self.folder / "server.log")
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l", log, "-w", "start")


def as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start_postgres(*, durable: bool = False) -> Postgres:
    """A running server in a new folder (under the system's temporary folder, which the
    `postgres` account can reach). Raises FileNotFoundError when no server is installed."""
    found = bin_dir()
    if found is None:
        raise FileNotFoundError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="flame-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = Postgres(folder, free_port(), found)
    try:
        server.run("initdb", "-D", str(folder / "data"), "-U", USER, "--auth=trust", "-E", "UTF8")
        server.start(durable=durable)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server


@contextlib.contextmanager
def postgres(*, durable: bool = False) -> Iterator[Postgres]:
    server = start_postgres(durable=durable)
    try:
        yield server
    finally:
        server.stop()

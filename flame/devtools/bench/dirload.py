"""The directory bench's load (bench/directory.py): many enrolled users, each with its own key,
their requests signed with Flame's own code before the clock starts (so the figures are the
directory's work, not the signer's; the directory still checks each one's time window and
nonce), sent by a few client processes over pinned keep-alive TLS (bench/loadgen.py). The CPU
the directory processes spent is measured too: per request, it does not depend on the client."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yarl import URL

from flame.core.crypto import Identity
from flame.core.models import Status
from flame.core.presence import make_presence
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.devtools.bench.loadgen import Check, LoadClients, Sent
from flame.devtools.cluster import env_of
from flame.devtools.procs import Proc, directory_proc
from flame.directory.keylog import KEY_NAME as LOG_KEY_NAME
from flame.directory.keylog import ensure_log_key
from flame.net.tls import CERT_NAME, KEY_NAME, ensure_certificate
from flame.services.account import enroll_request

WORKERS = 48  # requests in flight, over every client process
CLIENTS = 2  # client processes
# Everything out of the way of one client that is thousands of users at once.
DIRECTORY_SETTINGS = {
    "directory.rate_per_address": 1e9,
    "directory.burst_per_address": 1_000_000_000,
    "directory.rate_per_user": 1e9,
    "directory.burst_per_user": 1_000_000_000,
    "directory.connections_per_address": 8192,
    "directory.connections_max": 8192,
    "directory.presence_ttl_s": 3600.0,  # nothing expires during the bench
    "directory.idle_timeout_s": 600.0,
}


@dataclass
class User:
    name: str
    identity: Identity
    url: str  # the directory process it talks to


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""

    def wire(self) -> tuple[str, bytes]:
        """The directory's base URL and the request as HTTP/1.1 sends it (keep-alive)."""
        target = URL(self.url)
        base = f"{target.scheme}://{target.host}:{target.port}"
        lines = [
            f"{self.method} {target.raw_path_qs} HTTP/1.1",
            f"Host: {target.host}:{target.port}",
        ]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return base, ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


async def start_directories(
    root: Path, count: int, env: dict[str, Any], log_level: str = "warning"
) -> list[Proc]:
    """`count` directory processes sharing one certificate (and, given a database, its state)."""
    first = root / "dir-0"
    ensure_certificate(first)
    ensure_log_key(first)  # and one key log key (README)
    procs = []
    for i in range(count):
        folder = root / f"dir-{i}"
        if i:
            folder.mkdir(mode=0o700, parents=True)
            for name in (CERT_NAME, KEY_NAME, LOG_KEY_NAME):
                shutil.copy2(first / name, folder / name)
        settings = {**DIRECTORY_SETTINGS, **env}
        environ = env_of({**settings, "daemon.log_level": log_level})
        proc = directory_proc(root, env=environ, name=f"dir-{i}")
        await proc.start()
        procs.append(proc)
    return procs


def signed(
    user: User, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Call:
    target = URL(user.url + path)
    host = f"{target.host}:{target.port}"
    auth = sign_request(
        user.identity, user.name, DIRECTORY_AUDIENCE, method, path, host, body, int(time.time())
    )
    return Call(
        method,
        user.url + path,
        {**auth, **(headers or {}), "Content-Type": "application/json"},
        body,
    )


def presence_call(user: User, status: Status, ts: int) -> Call:
    record = make_presence(
        user.identity, user.name, "https://127.0.0.1:8470", status, [1, 2], ts, tls=bytes(32)
    )
    return signed(user, "PUT", "/dir/v1/presence", record.model_dump_json().encode())


def enroll_call(user: User) -> Call:
    body = enroll_request(user.identity, user.name, None).model_dump_json().encode()
    return Call("POST", user.url + "/dir/v1/enroll", {"Content-Type": "application/json"}, body)


@dataclass(eq=False)
class Load:
    """The client processes and the directory processes they load."""

    clients: LoadClients
    fingerprint: bytes
    pids: list[int]

    async def run(self, calls: list[Call], check: Check | None = None) -> Sent:
        """Send every call, WORKERS at a time, `check` seeing each answer; the seconds it took,
        and the CPU seconds the directory processes and the client processes spent meanwhile."""
        requests = [call.wire() for call in calls]
        return await self.clients.run(requests, self.fingerprint, WORKERS, check, self.pids)

    async def rate(
        self, figures: dict[str, Any], name: str, calls: list[Call], check: Check | None = None
    ) -> None:
        """`name`_per_s, `name`_cpu_ms (the directory's CPU per request) and
        `name`_client_cpu_ms (the client processes') into `figures`."""
        sent = await self.run(calls, check)
        figures[f"{name}_per_s"] = round(len(calls) / sent.seconds, 1)
        figures[f"{name}_cpu_ms"] = round(1000 * sent.cpu_s / len(calls), 3)
        figures[f"{name}_client_cpu_ms"] = round(1000 * sent.client_cpu_s / len(calls), 3)

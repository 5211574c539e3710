"""The directory bench's load client (bench/directory.py): many enrolled users, each with its own
key, their requests signed with Flame's own code before the clock starts (so the figures are
the directory's work, not the signer's), sent by a pool of workers over pinned keep-alive TLS."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from flame.core.crypto import Identity
from flame.core.models import Status
from flame.core.presence import make_presence
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.devtools.cluster import env_of
from flame.devtools.procs import Proc, directory_proc
from flame.directory.keylog import KEY_NAME as LOG_KEY_NAME
from flame.directory.keylog import ensure_log_key
from flame.net.tls import CERT_NAME, KEY_NAME, ensure_certificate
from flame.services.account import enroll_request

WORKERS = 48  # requests in flight
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


Check = Callable[[int, bytes], None]


async def run_calls(
    session: aiohttp.ClientSession, calls: list[Call], check: Check | None = None
) -> float:
    """Send every call, WORKERS at a time; the seconds it took. `check` sees each answer."""
    queue = iter(calls)

    async def worker() -> None:
        for call in queue:
            async with session.request(
                call.method, call.url, data=call.body or None, headers=call.headers
            ) as answer:
                body = await answer.read()
                if check is not None:
                    check(answer.status, body)
                elif answer.status >= 400:
                    raise RuntimeError(f"{call.method} {call.url}: {answer.status} {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return time.perf_counter() - started


async def timed(work: Awaitable[float], count: int) -> float:
    """Requests per second of `work` (which returns the seconds it took for `count`)."""
    return round(count / await work, 1)

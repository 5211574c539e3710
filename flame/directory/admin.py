"""The directory's admin channel: a Unix socket in its data folder (mode 0600), so only the
account that runs the directory can create invites while it is running. With no server running,
the CLI opens the database itself (under the folder lock)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import Field

from flame.clock import SystemClock
from flame.config import DirectorySettings
from flame.core.keylog import public_key_of
from flame.core.models import Username, Wire
from flame.directory import keylog, store
from flame.errors import FlameError
from flame.net.http import error_middleware, parse_model, read_body
from flame.net.tls import ensure_certificate
from flame.store.db import Database, FolderLock

SOCKET_NAME = "admin.sock"


class InviteBody(Wire):
    username: Username
    rekey: bool = False
    ttl_s: int = Field(gt=0)


DB = web.AppKey("db", Database)
NOW: web.AppKey[Callable[[], float]] = web.AppKey("now")


async def invite(request: web.Request) -> web.Response:
    body = parse_model(InviteBody, await read_body(request, 4096))
    code = await store.create_invite(
        request.app[DB],
        body.username,
        rekey=body.rekey,
        now=int(request.app[NOW]()),
        ttl_s=body.ttl_s,
    )
    return web.json_response({"code": code})


async def users(request: web.Request) -> web.Response:
    return web.json_response(
        {"users": [u.model_dump() for u in await store.list_users(request.app[DB])]}
    )


def build(db: Database, now: Callable[[], float]) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[DB] = db
    app[NOW] = now
    app.router.add_post("/invite", invite)
    app.router.add_get("/users", users)
    return app


async def start_admin(app: web.Application, data_dir: Path) -> web.AppRunner | None:
    path = data_dir / SOCKET_NAME
    if len(str(path)) > 100:  # AF_UNIX path limit: the CLI falls back to the database
        return None
    path.unlink(missing_ok=True)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    old_umask = os.umask(0o177)
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old_umask)
    return runner


async def admin_call(
    data_dir: Path, method: str, route: str, payload: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Ask a running directory; None when none is running (the caller opens the database)."""
    path = data_dir / SOCKET_NAME
    if not path.exists():
        return None
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as s:
            async with s.request(method, "http://directory" + route, json=payload) as response:
                data: dict[str, Any] = await response.json()
                if response.status >= 400:
                    raise FlameError(str(data.get("message", f"HTTP {response.status}")))
                return data
    except (aiohttp.ClientConnectionError, FileNotFoundError):
        return None


async def create_invite(data_dir: Path, username: str, *, rekey: bool, ttl_s: int) -> str:
    """`flame directory invite`: through the running directory, or its database if none runs."""
    reply = await admin_call(
        data_dir, "POST", "/invite", {"username": username, "rekey": rekey, "ttl_s": ttl_s}
    )
    if reply is not None:
        return str(reply["code"])
    db, lock = await with_database(data_dir)
    try:
        now = int(SystemClock().now())
        return await store.create_invite(db, username, rekey=rekey, now=now, ttl_s=ttl_s)
    finally:
        await db.close()
        lock.release()


async def enrolled_users(data_dir: Path) -> list[dict[str, Any]]:
    """`flame directory users`: through the running directory, or its database if none runs."""
    reply = await admin_call(data_dir, "GET", "/users")
    if reply is not None:
        return list(reply["users"])
    db, lock = await with_database(data_dir)
    try:
        return [u.model_dump() for u in await store.list_users(db)]
    finally:
        await db.close()
        lock.release()


def certificate_fingerprint(settings: DirectorySettings, data_dir: Path) -> bytes | None:
    """The fingerprint of the directory's certificate (made now if it never ran), for invites and
    `flame directory fingerprint`; None when it serves plain HTTP."""
    if settings.insecure_plain_http:
        return None
    return ensure_certificate(data_dir).fingerprint


def log_key(data_dir: Path) -> bytes:
    """The public key of the directory's key log (made now if it never ran), for invites."""
    return public_key_of(keylog.ensure_log_key(data_dir))


async def with_database(data_dir: Path) -> tuple[Database, FolderLock]:
    from flame.directory.app import open_directory_db

    lock = FolderLock(data_dir)
    lock.acquire()
    try:
        return await open_directory_db(data_dir), lock
    except BaseException:
        lock.release()
        raise

"""The directory's admin channel: a Unix socket in its data folder (mode 0600), so only the
account that runs the directory can create invites while it is running. With no server running,
the CLI opens the database itself (under the folder lock), never a new one: a folder where no
directory ever ran is refused, so a mistyped --data-dir cannot hand out invites nobody honours."""

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
from flame.directory import keylog
from flame.directory.sqlite_store import DIRECTORY_DB
from flame.directory.store import DirectoryStore
from flame.errors import Conflict, FlameError
from flame.net.http import error_middleware, parse_model, read_body
from flame.net.server import reachable_url
from flame.net.tls import CERT_NAME, ensure_certificate
from flame.store.db import FolderLock

SOCKET_NAME = "admin.sock"


class InviteBody(Wire):
    username: Username
    rekey: bool = False
    ttl_s: int = Field(gt=0)


STORE: web.AppKey[DirectoryStore] = web.AppKey("store")
NOW: web.AppKey[Callable[[], float]] = web.AppKey("now")
ADDRESS = web.AppKey("address", str)


async def new_invite(
    store: DirectoryStore, username: str, *, rekey: bool, now: int, ttl_s: int
) -> str:
    """An invite; for a user enrolled already only one with `rekey`, since enrollment refuses
    a plain one for a taken name.

    Raises:
        Conflict: the user is enrolled and `rekey` is not set, saying to use --rekey.
    """
    if not rekey and await store.identity_key_of(username) is not None:
        raise Conflict(
            f"{username} is enrolled already; to let them enroll new keys (a lost or new "
            f"machine): flame directory invite {username} --rekey"
        )
    return await store.create_invite(username, rekey=rekey, now=now, ttl_s=ttl_s)


async def invite(request: web.Request) -> web.Response:
    body = parse_model(InviteBody, await read_body(request, 4096))
    now = int(request.app[NOW]())
    code = await new_invite(
        request.app[STORE], body.username, rekey=body.rekey, now=now, ttl_s=body.ttl_s
    )
    return web.json_response({"code": code})


async def address_of(request: web.Request) -> web.Response:
    return web.json_response({"address": request.app[ADDRESS]})


async def users(request: web.Request) -> web.Response:
    return web.json_response(
        {"users": [u.model_dump() for u in await request.app[STORE].list_users()]}
    )


def build(store: DirectoryStore, now: Callable[[], float], address: str) -> web.Application:
    """`address`: where daemons reach this directory, for the invite's instructions."""
    app = web.Application(middlewares=[error_middleware])
    app[STORE] = store
    app[NOW] = now
    app[ADDRESS] = address
    app.router.add_post("/invite", invite)
    app.router.add_get("/users", users)
    app.router.add_get("/address", address_of)
    return app


def reachable_address(settings: DirectorySettings, port: int) -> str:
    """Where daemons reach a directory listening on `port` with these settings."""
    return reachable_url(settings.host, port, plain_http=settings.insecure_plain_http)


def require_directory(settings: DirectorySettings, data_dir: Path) -> None:
    """A directory has run in `data_dir`: its SQLite database is there, or its admin socket, or,
    on PostgreSQL (whose database is elsewhere), the certificate it made at its first start.

    Raises:
        FlameError: none has, naming the folder.
    """
    marks = [DIRECTORY_DB, SOCKET_NAME]
    if settings.database:
        if settings.insecure_plain_http:
            return  # nothing of the directory's is kept in its folder
        marks.append(CERT_NAME)
    if not any((data_dir / name).exists() for name in marks):
        raise FlameError(
            f"No directory in {data_dir}: none has run there. Give the data folder of "
            "'flame directory serve' with --data-dir (or start it once first)."
        )


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


async def create_invite(
    settings: DirectorySettings, data_dir: Path, username: str, *, rekey: bool, ttl_s: int
) -> str:
    """`flame directory invite`: through the running directory, or its database if none runs."""
    reply = await admin_call(
        data_dir, "POST", "/invite", {"username": username, "rekey": rekey, "ttl_s": ttl_s}
    )
    if reply is not None:
        return str(reply["code"])
    store, lock = await with_store(settings, data_dir)
    try:
        now = int(SystemClock().now())
        return await new_invite(store, username, rekey=rekey, now=now, ttl_s=ttl_s)
    finally:
        await store.close()
        lock.release()


async def running_address(data_dir: Path) -> str | None:
    """Where daemons reach the directory of `data_dir`, if it is running."""
    reply = await admin_call(data_dir, "GET", "/address")
    return None if reply is None else str(reply["address"])


async def enrolled_users(settings: DirectorySettings, data_dir: Path) -> list[dict[str, Any]]:
    """`flame directory users`: through the running directory, or its database if none runs."""
    reply = await admin_call(data_dir, "GET", "/users")
    if reply is not None:
        return list(reply["users"])
    store, lock = await with_store(settings, data_dir)
    try:
        return [u.model_dump() for u in await store.list_users()]
    finally:
        await store.close()
        lock.release()


def certificate_fingerprint(settings: DirectorySettings, data_dir: Path) -> bytes | None:
    """The fingerprint of the directory's certificate (made now if it has none yet: it served
    plain HTTP until now), for invites and `flame directory fingerprint`; None when it serves
    plain HTTP. Only for a folder where a directory has run."""
    require_directory(settings, data_dir)
    if settings.insecure_plain_http:
        return None
    return ensure_certificate(data_dir).fingerprint


def log_key(data_dir: Path) -> bytes:
    """The public key of the directory's key log (made now if it never ran), for invites."""
    return public_key_of(keylog.ensure_log_key(data_dir))


async def with_store(
    settings: DirectorySettings, data_dir: Path
) -> tuple[DirectoryStore, FolderLock]:
    from flame.directory.app import open_store

    require_directory(settings, data_dir)
    lock = FolderLock(data_dir)
    lock.acquire()
    try:
        return await open_store(settings, data_dir), lock
    except BaseException:
        lock.release()
        raise

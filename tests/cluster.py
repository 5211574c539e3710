"""A real directory and real daemons in the test's event loop, on loopback ports, with real SQLite
files in temporary folders and real crypto. Nothing of Flame's own is mocked."""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from flame.config import Settings, load_settings
from flame.core.crypto import Identity
from flame.daemon import Daemon
from flame.directory.app import DirectoryServer
from flame.net.verify import RequestVerifier
from flame.services.account import init_account
from flame.services.registry import Services

PASSWORD = "correct horse battery"


def services_of(node: Daemon) -> Services:
    """A running daemon's services, for tests that look inside."""
    assert node.services is not None
    return node.services


def identity_of(node: Daemon) -> Identity:
    return services_of(node).ctx.keys.identity()


def verifier_of(node: Daemon) -> RequestVerifier:
    """The verifier of a daemon's signed peer requests (its per-caller limits)."""
    assert node.verifier is not None
    return node.verifier


def fast_settings(data_dir: Path, directory_url: str, **daemon: Any) -> Settings:
    """Settings for tests: ports picked by the OS, cheap Argon2, short intervals."""
    flags: dict[str, Any] = {
        "daemon.data_dir": str(data_dir),
        "daemon.directory_url": directory_url,
        "daemon.peer_host": "127.0.0.1",
        "daemon.peer_port": 0,
        "daemon.ui_port": 0,
        "daemon.presence_interval_s": 0.2,
        "daemon.directory_sync_s": 0.2,
        "daemon.retry_base_s": 0.05,
        "daemon.probe_interval_s": 0.2,
        "daemon.retry_max_s": 0.5,
        "daemon.request_timeout_s": 5,
        "security.argon2_memory_kib": 64,
        "security.argon2_iterations": 1,
        "directory.presence_ttl_s": 2.0,
    }
    # `limits__peer_burst_per_sender=5` sets limits.peer_burst_per_sender; plain names: [daemon].
    flags.update(
        {
            key.replace("__", ".") if "__" in key else f"daemon.{key}": value
            for key, value in daemon.items()
        }
    )
    return load_settings(None, flags=flags, environ={}, read_default_file=False)


class UiClient:
    """The browser's side of the UI API, over real HTTP with the right Host and Origin."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.url = daemon.ui_url
        self.session = aiohttp.ClientSession(
            base_url=self.url,
            headers={"Origin": self.url},
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )

    async def login(self, password: str = PASSWORD) -> dict[str, Any]:
        async with self.session.post("/ui/api/login", json={"password": password}) as r:
            body: dict[str, Any] = await r.json()
            assert r.status == 200, body
            return body

    async def send(self, peer: str, text: str) -> dict[str, Any]:
        async with self.session.post(
            f"/ui/api/conversations/{peer}/messages", json={"text": text}
        ) as r:
            body: dict[str, Any] = await r.json()
            assert r.status == 201, body
            return dict(body["message"])

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(path) as r:
            return r.status, await r.json()

    async def post(self, path: str, payload: Any) -> tuple[int, Any]:
        async with self.session.post(path, json=payload) as r:
            return r.status, await r.json()

    async def put(self, path: str, payload: Any) -> tuple[int, Any]:
        # A file-like body: aiohttp warns about (and blocks on) large bytes bodies.
        body = io.BytesIO(json.dumps(payload).encode())
        headers = {"Content-Type": "application/json"}
        async with self.session.put(path, data=body, headers=headers) as r:
            return r.status, await r.json()

    async def delete(self, path: str) -> tuple[int, Any]:
        async with self.session.delete(path, json={}) as r:
            return r.status, await r.json()

    async def messages(self, peer: str) -> list[dict[str, Any]]:
        status, body = await self.get(f"/ui/api/conversations/{peer}/messages?limit=200")
        assert status == 200, body
        return list(body["messages"])

    async def open_conversation(self, peer: str) -> list[dict[str, Any]]:
        """What the page does: load the newest page, then say it showed it (read receipts)."""
        shown = await self.messages(peer)
        up_to = {"up_to": shown[-1]["id"]} if shown else {}
        status, body = await self.post(f"/ui/api/conversations/{peer}/read", up_to)
        assert status == 200, body
        return shown

    async def status_of(self, name: str) -> str | None:
        _, body = await self.get("/ui/api/contacts")
        return next((c["status"] for c in body["contacts"] if c["username"] == name), None)

    async def wait_status(self, feed: Feed, name: str, status: str) -> None:
        """Open `feed` first: an event that lands between the check and the wait is queued."""
        if await self.status_of(name) != status:
            await feed.wait_for(
                lambda e: (
                    e["type"] == "presence" and e["username"] == name and e["status"] == status
                )
            )

    async def websocket(self) -> Feed:
        ws = await self.session.ws_connect("/ui/api/ws", origin=self.url)
        feed = Feed(ws)
        hello = await feed.next_event()
        assert hello["type"] == "hello"
        return feed

    async def close(self) -> None:
        await self.session.close()


class Feed:
    """A UI WebSocket: await events by predicate, never by sleeping."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        message = await self.ws.receive(timeout=timeout)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        event: dict[str, Any] = json.loads(message.data)
        self.seen.append(event)
        return event

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_event(timeout)
                if predicate(event):
                    return event

    async def close(self) -> None:
        await self.ws.close()


async def eventually(
    read: Callable[[], Awaitable[Any]], *, equals: Any, timeout: float = 20.0
) -> None:
    """For state that announces no event (a row in another daemon's database): read it again
    every 20 ms until it equals the expected value, within `timeout`."""
    async with asyncio.timeout(timeout):
        while (value := await read()) != equals:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.02)
    assert value == equals


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory: DirectoryServer | None = None
        self.daemons: dict[str, Daemon] = {}
        self.clients: list[UiClient] = []

    @property
    def directory_url(self) -> str:
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
        await init_account(
            settings,
            name,
            settings.daemon.directory_url,
            invite,
            PASSWORD,
            settings.daemon_data_dir(),
        )
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

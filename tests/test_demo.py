"""`flame demo` as a new user runs it: real processes, printed addresses and passwords that work,
Ctrl-C stops everything, and a restart keeps the history."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.cluster import Feed


def free_block(size: int) -> int:
    """A run of `size` free loopback ports."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        sockets = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port block")


async def start_demo(
    root: Path, base: int
) -> tuple[asyncio.subprocess.Process, dict[str, tuple[str, str]]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flame",
        "demo",
        "--dir",
        str(root),
        "--base-port",
        str(base),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    users: dict[str, tuple[str, str]] = {}
    output: list[str] = []
    async with asyncio.timeout(60):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "".join(output)
            output.append(line)
            found = re.match(r"\s+(alice|bob|carol)\s+(http://127\.0\.0\.1:\d+/)\s+(\S+)", line)
            if found:
                users[found[1]] = (found[2].rstrip("/"), found[3])
            if "Press Ctrl-C" in line:
                return process, users


async def stop_demo(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None
    rest = await asyncio.wait_for(process.stdout.read(), 30)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    return rest.decode()


async def login(url: str, password: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(
        base_url=url, headers={"Origin": url}, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    async with session.post("/ui/api/login", json={"password": password}) as response:
        assert response.status == 200, await response.text()
    return session


async def test_demo_runs_stops_on_ctrl_c_and_keeps_history(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    base = free_block(7)
    process, users = await start_demo(root, base)
    try:
        assert set(users) == {"alice", "bob", "carol"}
        alice = await login(*users["alice"])
        bob = await login(*users["bob"])
        try:
            async with bob.ws_connect("/ui/api/ws", origin=users["bob"][0]) as ws:
                feed = Feed(ws)
                await feed.next_event()
                async with alice.post(
                    "/ui/api/conversations/bob/messages", json={"text": "hello from the demo"}
                ) as response:
                    assert response.status == 201
                event = await feed.wait_for(lambda e: e["type"] == "message")
                assert event["message"]["text"] == "hello from the demo"
        finally:
            await alice.close()
            await bob.close()
    finally:
        tail = await stop_demo(process)
    assert "Stopped." in tail

    process, again = await start_demo(root, base)
    try:
        assert again == users  # same passwords: the accounts were kept
        bob = await login(*again["bob"])
        try:
            async with bob.get("/ui/api/conversations/alice/messages") as response:
                texts = [m["text"] for m in (await response.json())["messages"]]
            assert texts == ["hello from the demo"]
        finally:
            await bob.close()
    finally:
        await stop_demo(process)

"""The demo (`make demo`) as a new user runs it: real processes, printed addresses and passwords
that work, Ctrl-C stops everything, and a restart keeps the history."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

from tests.cluster import UiClient


async def start_demo(root: Path) -> tuple[asyncio.subprocess.Process, dict[str, tuple[str, str]]]:
    """The demo on ports the system picks (--base-port 0): its users' (UI address, password)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flame.devtools",
        "demo",
        "--dir",
        str(root),
        "--base-port",
        "0",
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


async def login(url: str, password: str) -> UiClient:
    ui = UiClient(url, password)
    await ui.login()
    return ui


async def test_demo_runs_stops_on_ctrl_c_and_keeps_history(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    process, users = await start_demo(root)
    try:
        assert set(users) == {"alice", "bob", "carol"}
        alice = await login(*users["alice"])
        bob = await login(*users["bob"])
        try:
            feed = await bob.websocket()
            try:
                await alice.send("bob", "hello from the demo")  # answered 201
                event = await feed.wait_for(lambda e: e["type"] == "message")
                assert event["message"]["text"] == "hello from the demo"
            finally:
                await feed.close()
        finally:
            await alice.close()
            await bob.close()
    finally:
        tail = await stop_demo(process)
    assert "Stopped." in tail

    process, again = await start_demo(root)
    try:
        passwords = {name: password for name, (_, password) in users.items()}
        assert {name: password for name, (_, password) in again.items()} == passwords  # kept
        bob = await login(*again["bob"])
        try:
            texts = [m["text"] for m in await bob.messages("alice")]
            assert texts == ["hello from the demo"]
        finally:
            await bob.close()
    finally:
        await stop_demo(process)

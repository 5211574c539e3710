"""The demo (`make demo`) as a new user runs it: real processes, printed addresses, passwords and
process ids that are right, a process that dies is reported, Ctrl-C stops everything, and a
restart keeps the history."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from tests.cluster import UiClient

Users = dict[str, tuple[str, str, int]]


async def start_demo(root: Path) -> tuple[asyncio.subprocess.Process, Users]:
    """The demo on ports the system picks (--base-port 0): its users' (UI address, password,
    process id), and the directory's process id under "directory"."""
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
    users: Users = {}
    output: list[str] = []
    async with asyncio.timeout(60):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "".join(output)
            output.append(line)
            found = re.match(
                r"\s+(alice|bob|carol)\s+(http://127\.0\.0\.1:\d+/)\s+(\S+)\s+(\d+)$", line
            )
            if found:
                users[found[1]] = (found[2].rstrip("/"), found[3], int(found[4]))
            directory = re.search(r"\(directory https://127\.0\.0\.1:\d+, pid (\d+)\)", line)
            if directory:
                users["directory"] = ("", "", int(directory[1]))
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


def command_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_demo_runs_reports_a_death_stops_on_ctrl_c_and_keeps_history(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    process, users = await start_demo(root)
    try:
        assert set(users) == {"alice", "bob", "carol", "directory"}
        for name, (_, _, pid) in users.items():  # each id is that process's
            command = command_of(pid)
            kind = ["directory", "serve"] if name == "directory" else ["serve"]
            assert command[1 : 3 + len(kind)] == ["-m", "flame", *kind]
            assert str(root / name) in command
        alice = await login(*users["alice"][:2])
        bob = await login(*users["bob"][:2])
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
        carol = users["carol"][2]
        os.kill(carol, signal.SIGKILL)
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        assert line.startswith(f"carol (pid {carol}) was killed by SIGKILL; the rest keep running.")
    finally:
        tail = await stop_demo(process)
    assert "Stopped." in tail and "pid" not in tail  # the stop itself is no death to report

    process, again = await start_demo(root)
    try:
        passwords = {name: password for name, (_, password, _) in users.items()}
        assert {name: password for name, (_, password, _) in again.items()} == passwords  # kept
        bob = await login(*again["bob"][:2])
        try:
            texts = [m["text"] for m in await bob.messages("alice")]
            assert texts == ["hello from the demo"]
        finally:
            await bob.close()
    finally:
        await stop_demo(process)

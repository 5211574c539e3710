"""The demo (`make demo`) as a new user runs it: real processes, printed addresses, passwords and
process ids that are right, a process that dies is reported, Ctrl-C stops everything, and a
restart keeps the history."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest

from flame.core.transport import parse_fingerprint
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


async def serves_pinned_tls_only(root: Path, name: str) -> None:
    """`name`'s listener (the directory's, or a daemon's peer listener) answers over TLS with the
    certificate kept in its data folder, whose fingerprint it gave in its ready file (what its
    peers pin), and does not speak plain HTTP at all."""
    folder = root / name
    ready = json.loads((folder / "ready.json").read_text())
    pin = hashlib.sha256(ssl.PEM_cert_to_DER_cert((folder / "tls-cert.pem").read_text())).digest()
    assert ready["tls"] is not None and parse_fingerprint(ready["tls"]) == pin
    port = ready["port"] if name == "directory" else ready["peer_port"]
    path = "/dir/v1/hello" if name == "directory" else "/api/v1/hello"
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{port}{path}"
        async with session.get(url, ssl=aiohttp.Fingerprint(pin)) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):  # another certificate: refused by the pin
            await session.get(url, ssl=aiohttp.Fingerprint(bytes(32)))
        with pytest.raises(aiohttp.ClientError):  # the same port in plain HTTP: no answer
            async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                await response.read()


def command_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_demo_runs_on_pinned_tls_reports_a_death_stops_on_ctrl_c_and_keeps_history(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    process, users = await start_demo(root)
    try:
        assert set(users) == {"alice", "bob", "carol", "directory"}
        for name, (_, _, pid) in users.items():  # each id is that process's
            command = command_of(pid)
            kind = ["directory", "serve"] if name == "directory" else ["serve"]
            assert command[1 : 3 + len(kind)] == ["-m", "flame", *kind]
            assert str(root / name) in command
        for name in ("directory", "alice", "bob", "carol"):
            await serves_pinned_tls_only(root, name)
        alice = await login(*users["alice"][:2])
        bob = await login(*users["bob"][:2])
        try:
            # Its presence reports reach the directory: a daemon dials it only with its pin.
            directory_feed = await alice.websocket()
            status, me = await alice.get("/ui/api/me")
            assert status == 200
            if me["directory"] != "ok":
                await directory_feed.wait_for(lambda e: e == {"type": "directory", "state": "ok"})
            await directory_feed.close()
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
    for name in ("alice", "bob", "carol"):
        log = (root / name / "daemon.log").read_text()
        assert "plain HTTP" not in log and "no certificate pinned" not in log, log

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

"""The dev tools' own entry point and launcher: each tool has its help, `flame` itself has no dev
tool left and its runtime never imports them, and processes started on port 0 tell their ports
through --ready-file (no port is picked by binding and releasing it)."""

from __future__ import annotations

import ast
import asyncio
import json
import socket
from pathlib import Path

import aiohttp
import pytest

import flame
from flame.cli import main as flame_main
from flame.devtools.__main__ import main
from flame.devtools.procs import PORT_TAKEN
from tests.cluster import Cluster, eventually

RUNTIME = Path(flame.__file__).parent


@pytest.mark.parametrize("tool", ["demo", "bench", "chaos", "fuzz"])
def test_every_tool_has_help(tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([tool, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m flame.devtools") and len(out.splitlines()) > 3


@pytest.mark.parametrize("tool", ["demo", "bench", "chaos", "fuzz"])
def test_flame_itself_has_no_dev_tool(tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        flame_main([tool])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_runtime_never_imports_the_dev_tools() -> None:
    offenders = []
    for path in sorted(RUNTIME.rglob("*.py")):
        if path.is_relative_to(RUNTIME / "devtools"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path}: {n}" for n in names if n.startswith("flame.devtools")]
    assert offenders == []


def test_serve_documents_the_ready_file(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["serve"], ["directory", "serve"]):
        with pytest.raises(SystemExit):
            flame_main([*command, "--help"])
        assert "--ready-file PATH" in capsys.readouterr().out


async def test_processes_on_port_0_tell_their_ports_and_keep_them_on_restart(
    cluster: Cluster,
) -> None:
    directory = await cluster.start_directory_process()
    ready = json.loads(directory.ready_path.read_text())
    assert set(ready) == {"pid", "port", "tls"} and ready["pid"] == directory.pid
    assert ready["port"] == directory.ports["port"] > 0
    assert directory.tls is not None and directory.url.startswith("https://")

    bob = await cluster.add_process("bob")
    ready = json.loads(bob.proc.ready_path.read_text())
    assert set(ready) == {"pid", "peer_port", "ui_port", "tls"} and ready["pid"] == bob.proc.pid
    assert bob.proc.ports == {"peer_port": ready["peer_port"], "ui_port": ready["ui_port"]}
    ui = await bob.login()
    assert (await ui.get_json("/ui/api/me"))["username"] == "bob"

    ports = dict(bob.proc.ports)
    await bob.proc.kill()
    await bob.proc.start()  # kill -9, then again on the same ports: the same address for peers
    assert bob.proc.ports == ports
    tls = bob.proc.tls
    assert tls is not None  # the same certificate too: its fingerprint is the one peers pinned
    async with aiohttp.ClientSession() as session:
        hello = f"https://127.0.0.1:{ports['peer_port']}/api/v1/hello"
        async with session.get(hello, ssl=aiohttp.Fingerprint(tls)) as response:
            assert response.status == 200


async def test_a_restart_waits_out_a_connection_that_holds_its_old_port(cluster: Cluster) -> None:
    """A stopped process's port is free, so the OS may give it to an outgoing connection as its
    local end; the restart on that port asks again until the connection is gone."""
    directory = await cluster.start_directory_process()
    port = directory.ports["port"]
    await directory.stop()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))  # as a client socket's local end would hold it
    holder.listen()
    restarting = asyncio.ensure_future(directory.start())

    async def refused_once() -> bool:
        return PORT_TAKEN in directory.log_path.read_text()

    try:
        await eventually(refused_once, equals=True)  # a try failed on the port; it goes on
        assert not restarting.done()
    finally:
        holder.close()
    await restarting
    assert directory.ports["port"] == port

"""Where the UI listens: on loopback only (docs/UI_API.md, "Rules"), with a real daemon."""

from __future__ import annotations

import asyncio
import socket

import pytest

from flame.daemon import Daemon
from tests.cluster import Cluster


@pytest.fixture
async def solo(cluster: Cluster) -> Daemon:
    await cluster.start_directory()
    return await cluster.add_user("alice")


async def test_the_ui_listens_on_loopback_only(solo: Daemon) -> None:
    ui_listener = solo.listeners[1]
    assert ui_listener.bound and all(host in ("127.0.0.1", "::1") for host, _ in ui_listener.bound)
    # Another address of this machine (127.0.0.2 is this host too) does not answer.
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.2", solo.ui_port)
        writer.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", solo.ui_port)) == 0

"""The signed fuzzer (`make fuzz`, issue 9) in a short pass: real daemons and a real directory on
loopback get hostile requests over every route their apps register, signed with the members' real
keys or MAC'd with their pair keys (PROTOCOL.md §14.8), with envelopes of both versions sealed to
real recipients (version 2: Olm messages of real sessions, §14.4); not one 5xx, not one error
logged, and honest traffic still gets through afterwards. `make fuzz` runs 20,000 requests."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.api.test_openapi import app_routes
from tests.cluster import Cluster

FUZZ_TIMEOUT_S = 120


async def registered_routes(cluster: Cluster) -> set[str]:
    """Every route the real apps register, read from their routers (not from the fuzzer)."""
    directory = await cluster.start_directory()
    node = await cluster.add_user("alice")
    assert directory.listener is not None
    apps = (node.listeners[0].app, directory.listener.app)
    return {f"{method} {path}" for app in apps for method, path in app_routes(app)}


async def test_a_short_fuzz_pass_finds_no_5xx_and_reaches_every_route(
    tmp_path: Path, cluster: Cluster
) -> None:
    registered = await registered_routes(cluster)
    out = tmp_path / "fuzz.json"
    command = ["-m", "flame.devtools", "--log-level", "warning", "fuzz"]
    command += ["--requests", "1500", "--seed", "9", "--json", str(out)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), FUZZ_TIMEOUT_S)
    assert process.returncode == 0, output.decode()
    assert "fuzz: ok" in output.decode()
    report = json.loads(out.read_text())
    assert report["requests"] == 1500 and report["honest_traffic"] is True
    assert report["server_errors"] == [] and report["logged_errors"] == []
    assert set(report["by_route"]) == registered  # every route the apps have, and no other
    statuses = {int(status) for status in report["by_status"]}
    assert 200 in statuses and 400 in statuses and 401 in statuses  # past the checks, and not
    # Both versions, and both ways of authenticating, got past the checks as well as refused.
    for tag in ("v1", "v2", "ed25519", "mac", "unsigned"):
        assert report["by_tag"].get(f"{tag} 2xx", 0) > 0, tag
        assert report["by_tag"].get(f"{tag} 4xx", 0) > 0, tag
    assert report["v2_stored"] > 0  # version 2 inner messages were opened and stored

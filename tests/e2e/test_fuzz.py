"""The signed fuzzer (`make fuzz`, issue 9) in a short pass: real daemons and a real directory on
loopback get hostile requests over every route, signed with the members' real keys and with
envelopes sealed to real recipients; not one 5xx, not one error logged, and honest traffic still
gets through afterwards. `make fuzz` runs 20,000 requests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flame.devtools.fuzz.cases import ROUTES

FUZZ_TIMEOUT_S = 120


def test_a_short_fuzz_pass_finds_no_5xx_and_reaches_every_route(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    command = [sys.executable, "-m", "flame.devtools", "--log-level", "warning", "fuzz"]
    command += ["--requests", "1500", "--seed", "9", "--json", str(out)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=FUZZ_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fuzz: ok" in done.stdout
    report = json.loads(out.read_text())
    assert report["requests"] == 1500 and report["honest_traffic"] is True
    assert report["server_errors"] == [] and report["logged_errors"] == []
    assert len(report["by_route"]) == len(ROUTES)  # every route was hit
    statuses = {int(status) for status in report["by_status"]}
    assert 200 in statuses and 400 in statuses and 401 in statuses  # past the checks, and not

"""The bench (`make bench`) end to end, tiny: real processes, real figures; no timing thresholds
(the machine decides those), only that every message was counted and the JSON is complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flame.devtools.bench.goals import GOALS

LATENCY_KEYS = {"count", "min", "mean", "p50", "p90", "p99", "max"}


def latency_p50(result: dict[str, Any]) -> float:
    return round(float(result["latency"]["ms"]["p50"]), 3)


def test_bench_counts_every_message_and_writes_complete_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--messages", "20", "--burst", "100", "--search-messages", "3000"]
    args += ["--file-mib", "8", "--json", str(out)]
    args += ["--directory-users", "100", "--directory-subscribers", "10"]
    args += ["--group-sizes", "3", "--group-messages", "5", "--group-burst", "20"]
    args += ["--group-file-mib", "4", "--quick"]  # --quick, with sizes given as flags winning
    args += ["--directory-backends", "sqlite,postgres"]  # (--quick alone takes SQLite only)
    command = [sys.executable, "-m", "flame.devtools", *args]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as bench:
        try:
            output, _ = bench.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            bench.terminate()  # SIGTERM: the bench stops its daemons before it exits
            output, _ = bench.communicate(timeout=20)
            raise AssertionError("the bench took more than 150 s:\n" + output) from None
    assert bench.returncode == 0, output
    assert "p50" in output and "msg/s" in output

    result = json.loads(out.read_text())
    assert result["ok"] is True and result["problems"] == []
    assert result["params"]["messages"] == 20 and result["params"]["burst"] == 100
    assert result["params"]["quick"] is True and result["params"]["directory_users"] == 100
    # Every goal is listed with its figure; a quick run judges none of them.
    goals = {g["figure"]: g for g in result["goals"]}
    assert len(goals) == len(GOALS) and {g["verdict"] for g in goals.values()} == {"quick run"}
    assert goals["latency p50, alice POST -> bob WebSocket"]["value"] == latency_p50(result)
    assert "goals" in output and "quick run" in output
    assert result["machine"]["cpu_count"] >= 1
    assert result["machine"]["python"] and result["machine"]["platform"]

    latency = result["latency"]
    assert latency["sent"] == latency["received"] == 20
    assert set(latency["ms"]) == LATENCY_KEYS and latency["ms"]["count"] == 20
    assert 0 < latency["ms"]["min"] <= latency["ms"]["p50"] <= latency["ms"]["p90"]
    assert latency["ms"]["p90"] <= latency["ms"]["p99"] <= latency["ms"]["max"]

    burst = result["throughput"]
    for key in ("sent", "accepted", "received_ws", "stored_api"):
        assert burst[key] == 100, key
    assert burst["accept_per_s"] > 0 and burst["delivered_per_s"] > 0
    assert burst["accept_s"] > 0 and burst["deliver_s"] > 0
    assert set(burst["post_ms"]) == LATENCY_KEYS and burst["post_ms"]["count"] == 100
    assert result["total_s"] > 0
    group_file = result["group_file"]  # PROTOCOL.md §19.7: reported; that it matched, judged
    assert group_file["members"] == 5 and group_file["mib"] == 4 and group_file["sha256_match"]
    assert group_file["sender_uploaded_bytes"] >= 4 * 1024 * 1024
    assert set(group_file["per_member_s"]) == {"f01", "f02", "f03", "f04"}
    assert group_file["to_every_member_verified_s"] > 0
    (flow,) = result["group_flow"]
    assert flow["members"] == 3 and flow["sent"] == 5 and flow["to_last_ms"]["count"] == 5
    assert flow["burst"]["sent"] == 20 and flow["burst"]["per_s"] > 0
    sizes = result["groups"]["sizes"]
    assert [s["members"] for s in sizes] == [5, 20, 100]
    for size in sizes:
        assert size["envelopes"] == size["members"] - 1
        for key in ("fan_out_v1_ms", "fan_out_v2_ms", "sender_keys_message_ms"):
            assert size[key] > 0, key

    search = result["search"]
    assert search["messages"] == 3000 and search["queries"] == 200
    assert search["index_bytes"] > 0 and search["db_bytes"] > search["index_bytes"]
    for order in ("newest", "relevance"):
        assert search[f"{order}_ms"]["count"] == 200
        assert set(search[f"{order}_by_kind_ms"]) == {"common", "middle", "rare", "two words"}
    assert search["mean_hits"] > 0  # the queries find things: a Zipf corpus, not noise
    assert search["edit_ms"]["count"] == search["delete_ms"]["count"] == 50
    assert "FTS5 index" in output
    for backend in ("sqlite", "postgres"):
        directory = result["directory"][backend]
        if "skipped" in directory:  # no PostgreSQL here (CI installs it: never skipped there)
            assert backend == "postgres" and os.environ.get("CI") != "true"
            continue
        assert directory["users"] == 100 and directory["delta_entries"] == 1
        for key in ("reports", "unchanged_polls", "etag_304", "delta_syncs"):
            assert directory[f"{key}_per_s"] > 0, (backend, key)
            for cpu in (f"{key}_cpu_ms", f"{key}_client_cpu_ms"):  # per request, in ms
                assert isinstance(directory[cpu], float) and directory[cpu] >= 0, (backend, cpu)
        assert directory["delta_syncs_cpu_ms"] > 0  # 2,000 requests: never below a clock tick
        assert directory["push_ms"]["count"] == 20 * 10  # every push timed at every subscriber
    assert "push to 10 subscribers" in output
    file = result["file"]
    assert result["params"]["file_mib"] == 8 and file["size_bytes"] == 8 * 1024 * 1024
    assert file["sha256_match"] is True
    assert file["mb_s"] > 0 and file["transfer_mb_s"] > 0 and file["total_s"] > 0
    assert set(file["rss_peak_mib"]) == {"alice", "bob"}
    assert all(mib is not None and mib > 0 for mib in file["rss_peak_mib"].values())
    for machine_figure in ("loopback_tcp_mb_s", "aes_256_gcm_mb_s", "sha256_mb_s"):
        assert file[machine_figure] > 0
    assert "MB/s" in output and "peak RSS" in output
    # Version 2 beside version 1, and the prekey figures (PROTOCOL.md §14): reported, not judged.
    v1 = result["version_1"]
    assert v1["latency"]["received"] == 20 and v1["throughput"]["received_ws"] == 100
    assert v1["throughput"]["delivered_per_s"] > 0
    assert "of version 1" in output and "CPU per message" in output
    turns = result["versions_interleaved"]
    assert turns["pairs"] == 12 and len(turns["rounds"]) == 12
    assert turns["messages_per_burst"] == 100 // 6  # as long a burst as with 6 pairs
    assert turns["received"] == turns["expected"] == 2 * 12 * (100 // 6)
    assert {r["first"] for r in turns["rounds"]} == {1, 2}  # each version goes first in turn
    assert turns["throughput_ratio"]["min"] <= turns["throughput_ratio"]["median"]
    assert "interleaved, 12 pairs" in output
    cost = result["ratchet_cost"]
    assert cost["v1_us"] > 0 and cost["v2_us"] > 0 and "ratchet CPU per message" in output
    assert set(v1["cpu_s"]) >= {"alice", "bob"}
    prekeys = result["prekeys"]
    assert prekeys["keys_per_refill"] == 26 and prekeys["refill_ms"]["count"] == 40
    assert prekeys["claim_ms"]["count"] == prekeys["claims"] > 0
    assert "prekey refill" in output


def run_bench(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flame.devtools", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_bench_only_directory_runs_the_directory_figures_alone(tmp_path: Path) -> None:
    out = tmp_path / "directory.json"
    args = ["bench", "--only", "directory", "--directory-backends", "sqlite", "--json", str(out)]
    args += ["--directory-users", "40", "--directory-subscribers", "4"]
    done = run_bench(args, 120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the directory alone" in done.stdout and "Latency" not in done.stdout
    result = json.loads(out.read_text())["directory"]
    assert result["postgres"] == {"skipped": "not asked for (--directory-backends)"}
    sqlite = result["sqlite"]
    assert sqlite["users"] == 40 and sqlite["clients"] == 2 and sqlite["reports_per_s"] > 0
    assert sqlite["push_ms"]["count"] == 20 * 4
    wrong = run_bench(["bench", "--directory-backends", "oracle"], 60)
    assert wrong.returncode == 1 and "--directory-backends names some of" in wrong.stderr


def test_bench_only_files_runs_the_file_figure_alone(tmp_path: Path) -> None:
    out = tmp_path / "file.json"
    done = run_bench(["bench", "--only", "files", "--file-mib", "8", "--json", str(out)], 120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the file alone" in done.stdout and "Latency" not in done.stdout
    figure = json.loads(out.read_text())["file"]
    assert figure["size_bytes"] == 8 * 1024 * 1024 and figure["sha256_match"] is True
    for name in ("alice", "bob"):
        assert figure["rss_idle_mib"][name] > 0 and figure["rss_peak_mib"][name] > 0
        assert figure["cpu_s"][name] > 0

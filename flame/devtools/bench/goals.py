"""Each figure of the bench beside its goal (the goals the project set itself: issues 10, 13 and
14) and, where one bounds it, this machine's limit measured in the same run. A goal is judged
only on a full run: `--quick` sizes are too small to say anything, so they are shown as "quick".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Goal:
    figure: str
    unit: str
    # The figure in the bench's JSON, or None when this run did not measure it.
    read: Callable[[dict[str, Any]], float | None]
    at_most: float | None = None  # met when the figure is at most this ...
    at_least: float | None = None  # ... or at least this
    # The goal as a function of this machine's figures (e.g. a share of SHA-256's speed).
    at_least_of: Callable[[dict[str, Any]], float | None] | None = None
    limit: Callable[[dict[str, Any]], str] | None = None  # the machine's bound, in words


def _get(result: dict[str, Any], *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _sender_cpu_ms(result: dict[str, Any]) -> float | None:
    cpu, sent = _get(result, "cpu_s", "alice"), _get(result, "throughput", "sent")
    return None if cpu is None or not sent else 1000 * float(cpu) / int(sent)


def _peak_rss(result: dict[str, Any]) -> float | None:
    peaks = [v for v in (_get(result, "file", "rss_peak_mib") or {}).values() if v is not None]
    return max(peaks) if peaks else None


def _file_goal(result: dict[str, Any]) -> float | None:
    sha = _get(result, "file", "sha256_mb_s")
    return None if sha is None else 0.33 * float(sha)


def _file_limit(result: dict[str, Any]) -> str:
    f = result.get("file") or {}
    return (
        f"SHA-256 {f.get('sha256_mb_s', 0):,.0f} MB/s, AES-256-GCM "
        f"{f.get('aes_256_gcm_mb_s', 0):,.0f} MB/s, loopback {f.get('loopback_tcp_mb_s', 0):,.0f} MB/s"
    )


def _directory(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda result: _get(result, "directory", "sqlite", key)


def _hops(result: dict[str, Any]) -> str:
    """One message crosses loopback three times (UI -> alice -> bob -> UI) and waits for two
    fsyncs (alice's commit, bob's): the floor before any work, as measured in this run."""
    rtt, fsync = _get(result, "machine", "loopback_rtt_ms"), _get(result, "machine", "fsync_ms")
    if rtt is None or fsync is None:
        return ""
    return f"3 loopback round trips {rtt:.2f} ms, 2 fsyncs {fsync:.2f} ms: {3 * rtt + 2 * fsync:.2f} ms"


GOALS = [
    Goal(
        "file (1 GiB), browser upload -> bob verified",
        "MB/s",
        lambda r: _get(r, "file", "mb_s"),
        at_least_of=_file_goal,
        limit=_file_limit,
    ),
    Goal("peak RSS of a daemon during the file", "MiB", _peak_rss, at_most=64),
    Goal(
        "latency p50, alice POST -> bob WebSocket",
        "ms",
        lambda r: _get(r, "latency", "ms", "p50"),
        at_most=2,
        limit=_hops,
    ),
    Goal("latency p99", "ms", lambda r: _get(r, "latency", "ms", "p99"), at_most=6),
    Goal(
        "burst delivered to bob",
        "msg/s",
        lambda r: _get(r, "throughput", "delivered_per_s"),
        at_least=3000,
    ),
    Goal("sender CPU per message in the burst", "ms", _sender_cpu_ms, at_most=0.3),
    Goal(
        "search newest first p99", "ms", lambda r: _get(r, "search", "newest_ms", "p99"), at_most=2
    ),
    Goal(
        "search by relevance p99",
        "ms",
        lambda r: _get(r, "search", "relevance_ms", "p99"),
        at_most=10,
    ),
    Goal(
        "version 2 throughput / version 1 (interleaved median)",
        "",
        lambda r: _get(r, "versions_interleaved", "throughput_ratio", "median"),
        at_least=0.9,
    ),
    Goal("directory presence reports (SQLite)", "/s", _directory("reports_per_s"), at_least=2000),
    Goal(
        "directory unchanged polls (SQLite)",
        "/s",
        _directory("unchanged_polls_per_s"),
        at_least=2000,
    ),
    Goal(
        "directory push p99",
        "ms",
        lambda r: _get(r, "directory", "sqlite", "push_ms", "p99"),
        at_most=1000,
    ),
]


def judge(result: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    """Every goal with its figure: met, missed, not measured in this run, or quick."""
    judged = []
    for goal in GOALS:
        value = goal.read(result)
        target = goal.at_least_of(result) if goal.at_least_of else None
        at_least = target if target is not None else goal.at_least
        if value is None:
            verdict = "not measured"
        elif quick:
            verdict = "quick run"
        elif goal.at_most is not None:
            verdict = "met" if value <= goal.at_most else "missed"
        else:
            verdict = "met" if at_least is not None and value >= at_least else "missed"
        wanted = f"<= {_num(goal.at_most)}" if goal.at_most is not None else f">= {_num(at_least)}"
        judged.append(
            {
                "figure": goal.figure,
                "value": None if value is None else round(float(value), 3),
                "goal": f"{wanted} {goal.unit}".strip(),
                "verdict": verdict,
                "limit": goal.limit(result) if goal.limit and value is not None else "",
            }
        )
    return judged


def _num(value: float | None) -> str:
    """1,922 and 0.858 alike readable: whole numbers from 100 up, three digits below."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def goal_rows(judged: list[dict[str, Any]]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("goals", "figure / goal / verdict (this machine's limit)")]
    for j in judged:
        value = _num(j["value"])
        limit = f" ({j['limit']})" if j["limit"] else ""
        rows.append((f"  {j['figure']}", f"{value} / {j['goal']} / {j['verdict']}{limit}"))
    return rows

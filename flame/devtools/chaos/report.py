"""The chaos harness's report: the table it prints, and what the processes' logs say (errors
with their causes, relay activity)."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from flame.devtools.chaos.faults import FAULT_KINDS
from flame.devtools.procs import Proc
from flame.devtools.stats import print_rows


def print_report(result: dict[str, Any]) -> None:
    counts, params, faults = result["counts"], result["params"], result["faults"]
    ms = result["delivery_ms"]
    rows = [
        (
            "cluster",
            f"directory + {params['daemons']} daemons, seed {params['seed']}, "
            f"{params['messages']} messages over {params['sending_s']:.0f} s",
        ),
        (
            "faults",
            ", ".join(f"{kind} {faults['by_type'][kind]}" for kind in FAULT_KINDS)
            + f" (proxies cut {faults['connections_cut']}, refused {faults['connections_refused']})",
        ),
        (
            "accepted",
            f"{counts['accepted']} (refused while the sender was down: "
            f"{result['sending']['refused_down']}, without a session yet "
            f"{result['sending']['no_session']}, skipped {result['sending']['skipped']})",
        ),
        ("delivered", str(counts["delivered"])),
        ("lost", str(counts["lost"])),
        ("duplicated", str(counts["duplicated"])),
        ("out of order", str(counts["out_of_order"])),
        (
            "without receipt",
            f"{counts['without_receipt']}"
            + ("" if params["receipts_required"] else " (not required: --no-receipts)"),
        ),
        (
            "protocol versions",
            ", ".join(f"version {k}: {v}" for k, v in counts["by_version"].items())
            + f"; session resets {counts['session_resets']}, did not open "
            f"{counts['undecryptable']}",
        ),
        ("sender states", ", ".join(f"{k} {v}" for k, v in counts["sender_states"].items())),
        (
            "stored, no answer",
            f"{counts['stored_without_answer']} (POST cut by a kill, committed all the same)",
        ),
        ("quiescence", f"{result['quiescence_s']:.1f} s after the faults stopped"),
        (
            "degraded mode",
            f"{faults['degraded_seen']} of {faults['degraded_possible']} daemon UIs said "
            "'degraded' at the end of directory outages",
        ),
        ("errors in logs", f"{len(result['log_errors'])}"),
        *(
            ("", f"{count} x {text}")
            for text, count in Counter(
                e.split(": ", 1)[-1] for e in result["log_errors"]
            ).most_common(3)
        ),
        (
            "send -> delivered",
            f"p50 {ms['p50']:.0f} ms, p90 {ms['p90']:.0f} ms, p99 {ms['p99']:.0f} ms, "
            f"max {ms['max']:.0f} ms",
        ),
        *group_rows(result.get("group") or {}),
        ("result", "ok" if result["ok"] else "FAILED: " + "; ".join(result["problems"])),
    ]
    print_rows("Flame chaos (loopback, real processes)", rows)


def group_rows(group: dict[str, Any]) -> list[tuple[str, str]]:
    """The group mode's line (chaos/groups.py), when it ran."""
    if not group:
        return []
    return [
        (
            "group of all",
            f"{group['group_accepted']} accepted, each to every other member: lost "
            f"{group['lost']}, duplicated {group['duplicated']}, out of order "
            f"{group['out_of_order']}, without every receipt {group['without_receipt']}",
        )
    ]


def count_log_lines(procs: list[Proc], word: str) -> int:
    """Lines of these processes' logs that mention `word` (e.g. relay activity). Informational."""
    total = 0
    for proc in procs:
        with contextlib.suppress(OSError):
            text = proc.log_path.read_text(errors="replace").lower()
            total += sum(1 for line in text.splitlines() if word in line)
    return total


def log_problems(procs: list[Proc]) -> list[str]:
    """Each ERROR (or worse) in the processes' logs, with the last line of its traceback."""
    found = []
    for proc in procs:
        with contextlib.suppress(OSError):
            lines = proc.log_path.read_text(errors="replace").splitlines()
            for index, line in enumerate(lines):
                if " ERROR " not in line and " CRITICAL " not in line:
                    continue
                cause = ""
                for after in lines[index + 1 : index + 80]:
                    if after[:4].isdigit():  # the next log record
                        break
                    if after and not after[0].isspace() and not after.startswith("Traceback"):
                        cause = after
                message = line.split(" ", 2)[-1]
                found.append(
                    f"{proc.name}: {message[:200]}" + (f" | {cause[:200]}" if cause else "")
                )
    return found

"""`python -m flame.devtools chaos` (`make chaos`): a directory and several daemons as real
processes on loopback (peers.py), messages among random pairs through their UI APIs (sending.py),
and faults meanwhile (faults.py): kill -9 and restart of daemons and of the directory, and peers cut
off by a fault-injecting proxy (proxy.py). When the faults stop and everything is up again, every
accepted message is checked (checks.py): delivered exactly once, in per-sender order, and its
receipt back at the sender (PROTOCOL.md §13). The harness sees the daemons only through their UI
APIs and the `flame` command. Every wait is bounded in time; every process started is stopped on
the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flame.devtools.chaos.checks import (
    EXAMPLES,
    Snapshot,
    check,
    check_ui_order,
    wait_quiet,
)
from flame.devtools.chaos.faults import (
    FAULT_KINDS,
    Faults,
    ensure_all_up,
    fault_counts,
    run_faults,
    sending_duration,
)
from flame.devtools.chaos.groups import is_group, make_group, to_group, wait_group_quiet
from flame.devtools.chaos.peers import (
    READY_TIMEOUT_S,
    VERSION_2_ONLY,
    Chaos,
    Peer,
    cluster_env,
    start_chaos,
)
from flame.devtools.chaos.report import count_log_lines, log_problems, print_report
from flame.devtools.chaos.sending import Planned, Sending, pick_pairs, send_all
from flame.devtools.cluster import wait_known
from flame.devtools.stats import summary_ms
from flame.devtools.ui import ToolFailed

NAMES = ("ana", "ben", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo")
JSON_VERSION = 1
DEFAULT_RATE = 40.0  # messages per second, steady
# What the daemons log when a version 2 session breaks (services/sessions.py, PROTOCOL.md §14.9):
# the sender's reset, and the recipient's message that did not open. Lower case, as counted.
RESET_LINES = ("reset the version 2 session", "a version 2 message from")


async def held(peer: Peer) -> dict[str, int]:
    """What a daemon still holds for others (its outbox, and deposits it keeps as a relay):
    nothing, once everything is delivered. Informational."""
    assert peer.ui is not None
    diagnostics = await peer.ui.get_json("/ui/api/diagnostics")
    return {key: int(diagnostics[key]) for key in ("relay_deposits", "outbox")}


async def run_chaos(args: argparse.Namespace) -> int:
    """The harness; __main__ runs it so that SIGTERM or SIGHUP stop it as Ctrl-C does, every
    process and proxy it started stopped before it returns."""
    messages = int(getattr(args, "messages", 2000))
    daemons = int(getattr(args, "daemons", 5))
    seed_arg = getattr(args, "seed", None)
    seed = int(seed_arg) if seed_arg is not None else random.SystemRandom().randrange(1 << 31)
    total_faults = int(getattr(args, "faults", 12))
    rate = float(getattr(args, "rate", DEFAULT_RATE))
    receipts = not bool(getattr(args, "no_receipts", False))
    group_share = float(getattr(args, "group_share", 0.2))  # to one group of all (groups.py)
    json_path = Path(getattr(args, "json", "chaos-results.json"))
    settle_arg = getattr(args, "settle_timeout", None)
    settle_s = float(settle_arg) if settle_arg is not None else 60.0 + messages * 0.03
    keep_dir = getattr(args, "dir", None)
    if messages < 1 or total_faults < 0 or rate <= 0 or settle_s <= 0:
        raise ToolFailed("--messages, --rate and --settle-timeout must be positive, --faults >= 0.")
    if not 0 <= group_share <= 1:
        raise ToolFailed("--group-share must be between 0 and 1.")
    if not 2 <= daemons <= len(NAMES):
        raise ToolFailed(f"--daemons must be between 2 and {len(NAMES)}.")
    names = NAMES[:daemons]
    plan_rng = random.Random(f"{seed}:plan")
    fault_rng = random.Random(f"{seed}:faults")
    plan = [Planned(i, *pair) for i, pair in enumerate(pick_pairs(plan_rng, names, messages))]
    counts = fault_counts(total_faults, fault_rng)
    duration_s = sending_duration(messages, rate, counts)
    env = {**cluster_env(), **VERSION_2_ONLY}
    begun = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - begun:6.1f} s] {line}", flush=True)

    if keep_dir is not None:
        root = Path(keep_dir).resolve()
        if root.exists() and any(root.iterdir()):
            raise ToolFailed(f"--dir {root} is not empty: the harness needs a fresh cluster.")
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="flame-chaos-"))
    progress(f"directory and {', '.join(names)} in {root} (seed {seed})")
    sending = Sending()
    faults = Faults()
    ok = False
    try:
        chaos = await start_chaos(root, names, env)
        try:
            result = await _exercise(
                chaos,
                plan,
                sending,
                faults,
                counts,
                duration_s,
                fault_rng,
                receipts,
                settle_s,
                progress,
                (random.Random(f"{seed}:groups"), group_share),
            )
        except Exception:
            print(chaos.cluster.log_tails(20), file=sys.stderr)
            raise
        finally:
            stopped = await chaos.stop()
        result["exit_codes"] = stopped
        unclean = {name: code for name, code in stopped.items() if code != 0}
        if unclean:
            result["problems"].append(f"not stopped cleanly by SIGTERM: {unclean}")
            result["ok"] = False
        ok = bool(result["ok"])
    finally:
        if keep_dir is None and ok:
            shutil.rmtree(root, ignore_errors=True)
        elif keep_dir is None:
            print(f"Kept the cluster's folder for a look: {root}", file=sys.stderr)
    result["params"] = {
        "messages": messages,
        "daemons": daemons,
        "names": list(names),
        "seed": seed,
        "faults": total_faults,
        "rate_per_s": round(messages / duration_s, 2),
        "sending_s": round(duration_s, 1),
        "receipts_required": receipts,
        "group_share": group_share,
        "settle_timeout_s": settle_s,
        "env": env,
    }
    result["total_s"] = round(time.monotonic() - begun, 1)
    result = {"version": JSON_VERSION, **result}
    print_report(result)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {json_path} (total {result['total_s']:.1f} s).")
    return 0 if result["ok"] else 1


async def _exercise(
    chaos: Chaos,
    plan: list[Planned],
    sending: Sending,
    faults: Faults,
    counts: dict[str, int],
    duration_s: float,
    fault_rng: random.Random,
    receipts: bool,
    settle_s: float,
    progress: Callable[[str], None],
    groups: tuple[random.Random, float],
) -> dict[str, Any]:
    await wait_known(chaos.cluster, READY_TIMEOUT_S)
    group_id = None
    if groups[1] > 0:
        group_id = await make_group(chaos, READY_TIMEOUT_S)
        progress(f"a group of all; {to_group(plan, groups[0], groups[1], group_id)} go to it")
    progress(
        f"everyone online; sending {len(plan)} messages over {duration_s:.0f} s with faults "
        + ", ".join(f"{kind} x{n}" for kind, n in counts.items())
    )
    faults_over = asyncio.Event()
    phase_begun = time.monotonic()

    async def faults_then_heal() -> None:
        try:
            await run_faults(chaos, counts, duration_s, fault_rng, faults, phase_begun, progress)
        finally:
            faults_over.set()

    fault_task = asyncio.create_task(faults_then_heal())

    def fault_failed() -> bool:
        return fault_task.done() and not fault_task.cancelled() and bool(fault_task.exception())

    try:
        await send_all(chaos, plan, sending, duration_s, faults_over.is_set, fault_failed, progress)
        await fault_task
    finally:
        if not fault_task.done():
            fault_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fault_task
    await ensure_all_up(chaos, faults)
    progress(
        f"faults over: {len(sending.accepted)} accepted; waiting for quiescence "
        f"(at most {settle_s:.0f} s)"
    )
    everyone = sending
    sending = dataclasses.replace(
        everyone, accepted=[a for a in everyone.accepted if not is_group(a.recipient)]
    )  # one-to-one here; the group's below
    quiet, quiescence_s = await wait_quiet(chaos, sending.accepted, receipts, settle_s, progress)
    group: dict[str, Any] = {}
    if group_id is not None:
        group_quiet, group_verdict = await wait_group_quiet(
            chaos, group_id, everyone, receipts, settle_s, progress
        )
        group = {**group_verdict.counts, "quiet": group_quiet, "examples": group_verdict.examples}
    snapshot = await Snapshot.take(chaos)
    holdings = {name: await held(peer) for name, peer in chaos.peers.items()}
    verdict = check(snapshot, sending, receipts)
    ui_bad = await check_ui_order(chaos, snapshot, verdict.examples)
    verdict.counts["out_of_order"] += ui_bad
    verdict.counts["ui_order_problems"] = ui_bad
    c = verdict.counts
    problems = [
        f"{c[key]} {label}"
        for key, label in (
            ("lost", "lost"),
            ("duplicated", "duplicated"),
            ("out_of_order", "out of order"),
            ("wrong_author", "with the wrong author"),
            ("unexplained", "unexplained messages at recipients"),
        )
        if c[key]
    ]
    if receipts and c["without_receipt"]:
        problems.append(f"{c['without_receipt']} without receipt")
    if sending.errors:
        problems.append(f"{len(sending.errors)} unexpected answers to sends")
    if sending.skipped:
        problems.append(f"{len(sending.skipped)} messages never accepted")
    if not quiet:
        problems.append(f"not quiet within {settle_s:.0f} s")
    if c["not_version_2"]:
        problems.append(f"{c['not_version_2']} not under protocol version 2")
    daemon_procs = [p.node.proc for p in chaos.peers.values()]
    resets = {word: count_log_lines(daemon_procs, word) for word in RESET_LINES}
    c["session_resets"], c["undecryptable"] = resets[RESET_LINES[0]], resets[RESET_LINES[1]]
    if c["session_resets"] or c["undecryptable"]:
        problems.append(
            f"{c['session_resets']} session resets, {c['undecryptable']} version 2 messages "
            "that did not open (a crash must not desynchronise a session, PROTOCOL.md §14.6)"
        )
    problems.extend(
        f"group: {group[key]} {key.replace('_', ' ')}"
        for key in ("lost", "duplicated", "out_of_order", "without_receipt")
        if group.get(key)
    )
    if group and not group["quiet"]:
        problems.append("group: not quiet in time")
    problems.extend(faults.problems)
    errors = log_problems(chaos.procs())
    missing_kinds = [kind for kind in FAULT_KINDS if counts[kind] and not faults.count(kind)]
    if missing_kinds:
        problems.append(f"faults not injected: {', '.join(missing_kinds)}")
    return {
        "ok": not problems,
        "problems": problems,
        "counts": c,
        "group": group,
        "sending": {
            "planned": len(plan),
            "refused_down": sending.refused_down,
            "no_session": sending.no_session,
            "relogins": sending.relogins,
            "skipped": len(sending.skipped),
            "maybe_stored": len(sending.maybe_stored),
            "errors": sending.errors[:EXAMPLES],
        },
        "faults": {
            "by_type": {kind: faults.count(kind) for kind in FAULT_KINDS},
            "connections_cut": sum(p.proxy.cut for p in chaos.peers.values()),
            "connections_refused": sum(p.proxy.refused for p in chaos.peers.values()),
            "degraded_seen": sum(e.get("daemons_degraded", 0) for e in faults.log),
            "degraded_possible": faults.count("directory_kill") * len(chaos.peers),
            "log": faults.log,
        },
        "quiet": quiet,
        "quiescence_s": round(quiescence_s, 2),
        "delivery_ms": summary_ms(verdict.delivery_s, digits=1),
        "held_at_end": holdings,
        "examples": verdict.examples,
        "log_errors": errors[:200],
        "relay_log_lines": count_log_lines(daemon_procs, "relay"),
    }

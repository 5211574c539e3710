"""The chaos harness (`make chaos`) with small numbers (issue 4): real processes, real kill -9s, a
cut-off peer and a directory outage; zero lost, zero duplicated, zero out of order, every receipt
back home. No timing thresholds (the machine decides those).

Also, quickly and without processes: the harness's own parts, so that a harness that cannot see a
problem does not pass for a system that has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flame.devtools.__main__ import main
from flame.devtools.chaos.checks import Snapshot, check
from flame.devtools.chaos.faults import FAULT_KINDS, fault_counts, sending_duration
from flame.devtools.chaos.peers import known_setting
from flame.devtools.chaos.proxy import FaultProxy
from flame.devtools.chaos.sending import Accepted, Sending
from flame.store.messages import message_key

CHAOS_TIMEOUT_S = 100


def test_chaos_loses_nothing_duplicates_nothing_and_keeps_order(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    args = ["chaos", "--messages", "200", "--faults", "6", "--seed", "4"]
    args += ["--settle-timeout", "40", "--dir", str(tmp_path / "cluster"), "--json", str(out)]
    command = [sys.executable, "-m", "flame.devtools", *args]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as chaos:
        try:
            output, _ = chaos.communicate(timeout=CHAOS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            chaos.terminate()  # SIGTERM: the harness stops its processes before it exits
            output, _ = chaos.communicate(timeout=30)
            raise AssertionError(
                f"the chaos harness took over {CHAOS_TIMEOUT_S} s:\n{output}"
            ) from None
    assert out.exists(), output
    result = json.loads(out.read_text())
    counts, group = result["counts"], result["group"]
    # A share went to one group of all five (chaos/groups.py), each to the four others.
    assert group["group_accepted"] >= 1 and counts["accepted"] >= 1, output
    assert counts["accepted"] + group["group_accepted"] == 200, output
    assert counts["delivered"] == counts["accepted"], output
    for key in ("lost", "duplicated", "out_of_order", "without_receipt"):
        assert group[key] == 0, (key, output)
    assert group["quiet"] is True, output
    assert counts["lost"] == 0, output
    assert counts["duplicated"] == 0, output
    assert counts["out_of_order"] == 0, output
    assert counts["without_receipt"] == 0, output
    # Version 2 all the way (PROTOCOL.md §14): every text went inside a session, as its recipient
    # says, and no kill -9 desynchronised a session (no reset, nothing that did not open).
    assert counts["by_version"] == {"2": counts["accepted"]}, output
    assert counts["not_version_2"] == 0, output
    assert counts["session_resets"] == 0 and counts["undecryptable"] == 0, output
    assert "protocol versions" in output
    for kind in FAULT_KINDS:
        assert result["faults"]["by_type"][kind] >= 1, (kind, output)
    assert result["ok"] is True and result["problems"] == [], output
    assert chaos.returncode == 0, output
    assert "lost" in output and "p99" in output and "group of all" in output
    assert set(result["delivery_ms"]) >= {"p50", "p99", "max"}


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    args = ["chaos", "--messages", "2000", "--faults", "3", "--dir", str(folder)]
    args += ["--json", str(tmp_path / "chaos.json")]
    with subprocess.Popen(
        [sys.executable, "-m", "flame.devtools", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as chaos:
        assert chaos.stdout is not None
        seen = []
        try:
            for line in chaos.stdout:  # bounded by the pytest timeout
                seen.append(line)
                if "sent 200/2000" in line:
                    break
            chaos.send_signal(signal.SIGINT)
            output, _ = chaos.communicate(timeout=40)
        finally:
            if chaos.returncode is None:
                chaos.kill()
    assert chaos.returncode == 130, "".join(seen) + output
    locks = list(folder.glob("*/*.lock"))
    assert len(locks) >= 6, locks  # the directory's and the five daemons'
    for lock in locks:  # nobody holds any: every process it started has exited
        with open(lock, "rb+") as file:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_chaos_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["chaos", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--messages" in out and "--faults" in out and "--no-receipts" in out


def test_faults_are_spread_over_the_kinds_and_fit_in_the_sending_phase() -> None:
    import random

    counts = fault_counts(4, random.Random(1))
    assert sum(counts.values()) == 4 and all(counts[kind] >= 1 for kind in FAULT_KINDS)
    assert fault_counts(0, random.Random(1)) == dict.fromkeys(FAULT_KINDS, 0)
    assert sending_duration(2000, 40.0, fault_counts(12, random.Random(1))) == 50.0
    assert sending_duration(10, 40.0, {"block": 3}) > 3 * 5.0


def test_only_settings_this_version_knows_are_set() -> None:
    assert known_setting("FLAME_DAEMON_RETRY_BASE_S")
    assert known_setting("FLAME_DIRECTORY_PRESENCE_TTL_S")
    assert not known_setting("FLAME_DAEMON_NO_SUCH_THING")
    assert not known_setting("FLAME_NOSECTION_KEY")


# --- the checker sees what it must see ---------------------------------------------------------

COLUMNS = "rowid, id, peer, direction, author, seq, kind, body, sent_at, received_at, state, error"


def rows(values: list[tuple[object, ...]]) -> list[dict[str, Any]]:
    """The messages as a daemon's UI API lists them (docs/UI_API.md): the body's text, no rowid."""
    found = []
    for value in sorted(values, key=lambda v: int(str(v[0]))):
        row = dict(zip(COLUMNS.split(", "), value, strict=True))
        row["text"] = json.loads(str(row.pop("body")))["text"]
        row["protocol_version"] = 2 if row["direction"] == "in" else None
        del row["rowid"]
        found.append(row)
    return found


def message(
    index: int, sender: str, recipient: str, seq: int, state: str = "delivered"
) -> tuple[Accepted, tuple[object, ...], tuple[object, ...]]:
    """An accepted message, its sender's row and its recipient's row."""
    text = f"chaos {index:06d}.1 {sender}>{recipient}"
    key = message_key(sender, f"env{index}")
    body = json.dumps({"text": text})
    accepted = Accepted(index, sender, recipient, text, key, seq, 100.0 + index, 100.0 + index)
    out = (
        index,
        key,
        recipient,
        "out",
        sender,
        seq,
        "text",
        body,
        100.0 + index,
        None,
        state,
        None,
    )
    in_ = (
        index,
        key,
        sender,
        "in",
        sender,
        seq,
        "text",
        body,
        100.0 + index,
        100.5 + index,
        "x",
        None,
    )
    return accepted, out, in_


def verdict_for(
    messages: list[tuple[Accepted, tuple[object, ...], tuple[object, ...]]],
    drop: frozenset[int] = frozenset(),
    extra_in: list[tuple[object, ...]] | None = None,
    version_1: frozenset[int] = frozenset(),
) -> dict[str, int]:
    sending = Sending(accepted=[m[0] for m in messages])
    received = rows([m[2] for i, m in enumerate(messages) if i not in drop] + (extra_in or []))
    for index in version_1:
        received[index]["protocol_version"] = 1
    snapshot = Snapshot({"ana": rows([m[1] for m in messages]), "ben": received})
    counts = check(snapshot, sending, receipts=True).counts
    return {k: v for k, v in counts.items() if isinstance(v, int)}


def test_the_checker_passes_a_clean_run() -> None:
    clean = [message(i, "ana", "ben", i + 1) for i in range(5)]
    counts = verdict_for(clean)
    assert counts["accepted"] == counts["delivered"] == 5
    assert counts["lost"] == counts["duplicated"] == counts["out_of_order"] == 0
    assert counts["without_receipt"] == 0
    assert counts["not_version_2"] == 0


def test_the_checker_counts_texts_that_did_not_travel_under_version_2() -> None:
    five = [message(i, "ana", "ben", i + 1) for i in range(5)]
    assert verdict_for(five, version_1=frozenset({1, 3}))["not_version_2"] == 2
    sending = Sending(accepted=[m[0] for m in five])
    snapshot = Snapshot({"ana": rows([m[1] for m in five]), "ben": rows([m[2] for m in five])})
    assert check(snapshot, sending, receipts=True).counts["by_version"] == {"2": 5}


def test_the_checker_counts_lost_duplicated_reordered_and_unacknowledged() -> None:
    five = [message(i, "ana", "ben", i + 1) for i in range(5)]
    lost = verdict_for(five, drop=frozenset({2}))
    assert lost["lost"] == 1 and lost["out_of_order"] >= 1  # a gap in ben's seqs too

    copy = list(five[1][2])
    copy[0], copy[1] = 99, "ana:another-id"  # the same text again under a new id
    assert verdict_for(five, extra_in=[tuple(copy)])["duplicated"] == 1

    swapped = [message(i, "ana", "ben", i + 1) for i in range(5)]
    first, second = list(swapped[0][2]), list(swapped[1][2])
    first[5], second[5] = 2, 1  # ben holds them under each other's seq
    swapped[0] = (swapped[0][0], swapped[0][1], tuple(first))
    swapped[1] = (swapped[1][0], swapped[1][1], tuple(second))
    assert verdict_for(swapped)["out_of_order"] == 2

    unacknowledged = [message(i, "ana", "ben", i + 1, state="sent") for i in range(3)]
    assert verdict_for(unacknowledged)["without_receipt"] == 3


# --- the proxy ---------------------------------------------------------------------------------


async def test_the_proxy_relays_and_blocked_it_refuses_and_cuts() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[1]
    proxy = FaultProxy("echo", target)
    await proxy.start()  # on a port the system picks
    assert proxy.port != 0
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"

        proxy.block()  # the open connection is cut
        assert await asyncio.wait_for(reader.read(1024), 5) == b""
        writer.close()
        assert proxy.cut >= 1

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(1024), 5) == b""  # refused at once
        writer.close()
        assert proxy.refused == 1

        proxy.unblock()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"again")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"again"
        writer.close()
        await writer.wait_closed()
    finally:
        await proxy.stop()
        server.close()
        await server.wait_closed()

"""The supervisor of the daemon's loops (flame/tasks.py): a loop that keeps crashing is restarted
with growing delays, never in a tight loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flame.tasks import RESTART_FIRST_S, RESTART_MAX_S, Supervisor


async def test_a_loop_that_crashes_at_once_every_time_is_restarted_with_growing_delays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delays: list[float] = []
    enough = asyncio.Event()
    starts = 0

    async def record(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 9:
            enough.set()
            await asyncio.Event().wait()  # stay here until stopped

    async def crash() -> None:
        nonlocal starts
        starts += 1
        raise RuntimeError("broken on purpose")

    supervisor = Supervisor({"broken": crash}, sleep=record)
    supervisor.start()
    await enough.wait()
    await supervisor.stop()
    assert delays == [RESTART_FIRST_S * 2**n for n in range(6)] + [RESTART_MAX_S] * 3
    assert starts == len(delays)  # every start after the first waited its delay
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(crashes) == len(delays) and all(r.exc_info for r in crashes)
    for r in crashes:
        r.expected = True  # the autouse check: asked for

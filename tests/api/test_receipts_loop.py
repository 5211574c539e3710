"""The loop that pays delivered receipts (PROTOCOL.md §13.2), on alice's daemon alone: what was owed
before it started (a daemon stopped, or killed, after storing) is paid once it runs, and a store
wakes it for what is owed next; each payment is a sealed receipt in the outbox."""

from __future__ import annotations

import asyncio
import contextlib

from tests.api.conftest import ApiNode
from tests.api.test_peer_routes import Zoe, envelope, unlocked
from tests.api.test_strict_parsing import owed_count, queued_receipts


async def paid(node: ApiNode, receipts: int) -> list[list[str]]:
    """Until the outbox holds `receipts` receipts to zoe: each payment wakes the outbox."""
    wake = node.services.ctx.wake.outbox
    async with asyncio.timeout(10):
        while len(queued := await queued_receipts(node)) < receipts:
            await wake.wait()
            wake.clear()
    return queued


async def test_the_loop_pays_what_was_owed_before_it_ran_and_is_woken_for_the_rest(
    node: ApiNode,
) -> None:
    zoe = Zoe(await unlocked(node))
    before = envelope(node, "before the loop", seq=1)
    assert (await zoe.post([before]))[0] == 200
    assert await owed_count(node) == 1 and await queued_receipts(node) == []
    loop = asyncio.create_task(node.services.receipts.send_owed())
    try:
        assert await paid(node, 1) == [[before.id]]
        later = [envelope(node, f"later {n}", seq=n) for n in (2, 3)]
        assert (await zoe.post(later))[0] == 200
        queued = await paid(node, 2)
        assert sorted(e.id for e in later) in queued and await owed_count(node) == 0
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop

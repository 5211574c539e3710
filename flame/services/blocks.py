"""Blocking (PROTOCOL.md §12.4): the one list of people this user refuses to hear from.

A blocked user's requests are refused at the remote API with a bare 403 before their body is read
or anything is decrypted (api/peer/guard.py); an envelope they wrote that reaches us through
someone else is refused after opening (services/inbox.py); their file offers and chunks are
refused; they vanish from the contact list unless asked for. `is_blocked` is the one question.
Once unblocked, what they wrote while blocked is never shown (`wrote_while_blocked`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flame.services.context import Context
from flame.services.events import BlockChanged
from flame.store import blocks as block_store
from flame.store.blocks import Period


@dataclass(eq=False)
class Blocks:
    ctx: Context
    # The tables, cached: the remote API asks per request, the inbox per envelope.
    _since: dict[str, float] | None = field(default=None, init=False)
    _periods: dict[str, list[Period]] | None = field(default=None, init=False)

    async def _blocked(self) -> dict[str, float]:
        if self._since is None:
            self._since = await block_store.blocked_users(self.ctx.db)
        return self._since

    async def names(self) -> set[str]:
        return set(await self._blocked())

    async def is_blocked(self, username: str) -> bool:
        """True if this user blocked `username`: refuse their requests, do not relay for them."""
        return username in await self._blocked()

    async def wrote_while_blocked(self, username: str, written_at: float) -> bool:
        """Whether `written_at` (the author's clock, epoch seconds) falls in a block of
        `username` that has ended: such a message is accepted and dropped (PROTOCOL.md §12.4)."""
        if self._periods is None:
            self._periods = await block_store.block_periods(self.ctx.db)
        return any(start <= written_at < end for start, end in self._periods.get(username, ()))

    async def block(self, username: str) -> None:
        now = self.ctx.clock.now()
        await block_store.add_block(self.ctx.db, username, now)
        (await self._blocked()).setdefault(username, now)
        self.ctx.events.publish(BlockChanged(username, blocked=True))

    async def unblock(self, username: str) -> None:
        period = await block_store.remove_block(self.ctx.db, username, self.ctx.clock.now())
        (await self._blocked()).pop(username, None)
        if period is not None and self._periods is not None:
            self._periods.setdefault(username, []).append(period)
        self.ctx.events.publish(BlockChanged(username, blocked=False))

    async def listing(self) -> dict[str, float]:
        """username -> when they were blocked."""
        return await block_store.blocked_users(self.ctx.db)

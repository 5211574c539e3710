"""Blocking (PROTOCOL.md §12.4): the one list of people this user refuses to hear from.

A blocked user's requests are refused at the remote API with a bare 403 before their body is read
or anything is decrypted (api/peer/guard.py); an envelope they wrote that reaches us through
someone else is refused after opening (services/inbox.py); their file offers and chunks are
refused; they vanish from the contact list unless asked for. `is_blocked` is the one question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flame.services.context import Context
from flame.services.events import BlockChanged
from flame.store import blocks as block_store


@dataclass(eq=False)
class Blocks:
    ctx: Context
    # The table, cached: the remote API asks per request.
    _names: set[str] | None = field(default=None, init=False)

    async def names(self) -> set[str]:
        if self._names is None:
            self._names = set(await block_store.blocked_users(self.ctx.db))
        return self._names

    async def is_blocked(self, username: str) -> bool:
        """True if this user blocked `username`: refuse their requests, do not relay for them."""
        return username in await self.names()

    async def block(self, username: str) -> None:
        await block_store.add_block(self.ctx.db, username, self.ctx.clock.now())
        (await self.names()).add(username)
        self.ctx.events.publish(BlockChanged(username, blocked=True))

    async def unblock(self, username: str) -> None:
        await block_store.remove_block(self.ctx.db, username)
        (await self.names()).discard(username)
        self.ctx.events.publish(BlockChanged(username, blocked=False))

    async def listing(self) -> dict[str, float]:
        """username -> when they were blocked."""
        return await block_store.blocked_users(self.ctx.db)

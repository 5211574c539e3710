"""Group commit for the directory's presence reports: the reports that arrive while one commit
is under way wait for the next, and that one transaction holds them all. Each report's caller
is answered only once the commit that holds it is durable (PROTOCOL.md §5.3), so one fsync is
shared by many reports instead of each paying its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class GroupCommit(Generic[T]):
    """Items submitted while no commit runs start one; the others wait for the next, which takes
    them all at once (in the order they came). A failed commit fails every item it held."""

    commit: Callable[[list[T]], Awaitable[None]]
    pending: list[tuple[T, asyncio.Future[None]]] = field(default_factory=list, init=False)
    task: asyncio.Task[None] | None = field(default=None, init=False)
    commits: int = field(default=0, init=False)  # transactions so far (the tests count them)

    async def submit(self, item: T) -> None:
        """Return once `item` is committed; raise what its commit raised."""
        done = asyncio.get_running_loop().create_future()
        self.pending.append((item, done))
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="directory-group-commit")
        await done

    async def _run(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await self.commit([item for item, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                except asyncio.CancelledError:
                    for _, done in batch + self.pending:
                        done.cancel()
                    self.pending = []
                    raise
                self.commits += 1
                for _, done in batch:
                    if not done.done():  # a caller that went away is not answered
                        done.set_result(None)
        finally:
            self.task = None

    async def drain(self) -> None:
        """Wait for the commit under way (and the ones queued behind it)."""
        while self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.task)

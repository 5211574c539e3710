"""The event hub: fans live events out to every connected UI WebSocket."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("flame.hub")


class Hub:
    def __init__(self, queue_size: int = 20_000) -> None:
        self.queue_size = queue_size
        self.subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.queue_size)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.subscribers.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A client this far behind is better off reconnecting and refetching.
                log.warning("a UI client fell behind; closing its feed")
                self.subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)

    def close_all(self) -> None:
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self.subscribers.clear()

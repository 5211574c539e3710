"""The bench's message figures, driven through the UI APIs as a browser would: latency (one
message at a time, alice's POST until bob's WebSocket delivers it) and throughput (a burst of
POSTs with many in flight, until bob has every one). Every wait is bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

from flame.devtools.cluster import Node
from flame.devtools.stats import summary_ms
from flame.devtools.ui import PAGE, ToolFailed, UiClient

CONCURRENCY = 32
WARMUP_MESSAGES = 10
TEXT_CHARS = 64
ONLINE_TIMEOUT_S = 30.0
MESSAGE_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 30.0


class Tab:
    """One browser tab with its live feed open: when each incoming message arrived."""

    def __init__(self, node: Node) -> None:
        assert node.ui is not None, "log in first"
        self.node = node
        self.ui: UiClient = node.ui
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.arrived: dict[str, float] = {}  # id of an incoming message -> perf_counter()
        self.server_s: dict[str, float] = {}  # id -> receiver's received_at - author's sent_at
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.feed_closed = False

    async def open_feed(self) -> None:
        self.ws = (await self.ui.websocket()).ws
        self.reader = asyncio.create_task(self._read_feed(self.ws))

    async def _read_feed(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for frame in ws:
                now = time.perf_counter()
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(frame.data)
                if event.get("type") == "message" and event["message"]["direction"] == "in":
                    message = event["message"]
                    self.arrived.setdefault(message["id"], now)
                    if message.get("received_at") is not None:
                        self.server_s[message["id"]] = message["received_at"] - message["sent_at"]
                    waiter = self.waiters.pop(message["id"], None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(now)
        finally:
            self.feed_closed = True
            for waiter in self.waiters.values():
                if not waiter.done():
                    waiter.set_exception(ToolFailed(f"{self.node.name}'s WebSocket closed."))

    async def arrival(self, message_id: str, timeout_s: float) -> float:
        """When the feed delivered this message (perhaps before its POST even answered)."""
        if message_id in self.arrived:
            return self.arrived[message_id]
        if self.feed_closed:
            raise ToolFailed(f"{self.node.name}'s WebSocket closed.")
        waiter = self.waiters.setdefault(message_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError as exc:
            raise ToolFailed(
                f"{self.node.name} did not get message {message_id} within {timeout_s:.0f} s."
            ) from exc

    async def holds(self, peer: str, message_id: str) -> bool:
        """Whether the newest page of the conversation holds this message."""
        page = await self.ui.get_json(
            f"/ui/api/conversations/{peer}/messages", {"limit": str(PAGE)}
        )
        return any(m["id"] == message_id for m in page["messages"])

    async def incoming_ids(self, peer: str, max_pages: int) -> set[str]:
        """The conversation page by page, as the UI scrolls back; the incoming ids."""
        messages = await self.ui.conversation(peer, max_pages=max_pages)
        return {m["id"] for m in messages if m["direction"] == "in"}

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


def text_for(kind: str, index: int) -> str:
    head = f"{kind} {index:06d} "
    return head + "x" * max(0, TEXT_CHARS - len(head))


async def measure_latency(
    alice: Tab, bob: Tab, count: int, kind: str = "latency"
) -> dict[str, Any]:
    """One message at a time: from just before alice's POST until bob's feed delivers it."""
    samples: list[float] = []
    ids: list[str] = []
    for index in range(count):
        started = time.perf_counter()
        message_id = str((await alice.ui.send("bob", text_for(kind, index)))["id"])
        samples.append(await bob.arrival(message_id, MESSAGE_TIMEOUT_S) - started)
        ids.append(message_id)
    server = [bob.server_s[i] for i in ids if i in bob.server_s]
    return {
        "ms": summary_ms(samples),
        "sent": count,
        "received": len(samples),
        "server_ms": summary_ms(server),
    }


async def measure_throughput(
    alice: Tab, bob: Tab, total: int, concurrency: int
) -> tuple[dict[str, Any], set[str]]:
    """`total` POSTs with `concurrency` in flight; done when bob has every one. Returns the
    figures and the ids sent."""
    sent: list[tuple[int, str]] = []  # (seq, id)
    post_s: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            message = await alice.ui.send("bob", text_for("burst", index))
            sent.append((int(message["seq"]), str(message["id"])))
            post_s.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    accepted_at = time.perf_counter()
    ids = {message_id for _, message_id in sent}
    # A recipient's queue is first in, first out (PROTOCOL.md §7.2): the last one arrives last
    # (whether every one arrived is counted afterwards, page by page).
    last_id = max(sent)[1]
    deadline = accepted_at + max(60.0, total * 0.02)
    fell_behind = False
    while time.perf_counter() < deadline:
        if ids.issubset(bob.arrived.keys()):
            break
        if bob.feed_closed:  # the feed fell behind and was closed: ask bob's UI API instead
            fell_behind = True
            if await bob.holds("alice", last_id):
                break
            await asyncio.sleep(0.05)
            continue
        await asyncio.sleep(0.005)
    else:
        raise ToolFailed(
            f"bob had {len(ids & bob.arrived.keys())} of {total} burst messages "
            f"after {time.perf_counter() - started:.0f} s."
        )
    received = [bob.arrived[i] for i in ids if i in bob.arrived]
    stored_at = time.perf_counter() if fell_behind else max(received)
    return {
        "sent": total,
        "accepted": len(ids),
        "received_ws": len(received),
        "accept_s": round(accepted_at - started, 4),
        "deliver_s": round(stored_at - started, 4),
        "accept_per_s": round(total / (accepted_at - started), 1),
        "delivered_per_s": round(total / (stored_at - started), 1),
        "post_ms": summary_ms(post_s),
        "feed_fell_behind": fell_behind,
    }, ids

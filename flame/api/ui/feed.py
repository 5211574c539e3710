"""The live feed: one WebSocket per open page (docs/UI_API.md, "Live events"). The session and
Origin were checked by the middlewares before the upgrade; the feed ends with its session (a
logout, or the daemon locking)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from flame.api.ui import views
from flame.api.ui.session import SESSION, WS_PROTOCOL
from flame.api.ui.state import UI
from flame.core.encoding import parse_json_object
from flame.errors import BadRequest
from flame.services.events import Feed
from flame.services.status import StatusTracker

HEARTBEAT_S = 30.0
SESSION_ENDED = 4401  # the close code of a feed whose session ended (logout, lock): log in again
FRAME_MAX_BYTES = 64 * 1024


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ui = request.app[UI]
    services = ui.services
    session = ui.sessions.live(request[SESSION])
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_S, max_msg_size=FRAME_MAX_BYTES, protocols=(WS_PROTOCOL,)
    )
    await ws.prepare(request)
    feed = services.ctx.events.subscribe()
    await ws.send_json(views.hello_event(ui.me()))
    await ws.send_json(views.my_status_json(services.status.view()))
    services.status.ui_opened()  # an open UI keeps the status online (PROTOCOL.md §12.2)
    reader = asyncio.create_task(_read_client(ws, services.status, ui.touch))
    try:
        await _send_events(ws, feed, reader, session.ended)
    except ConnectionResetError:
        pass
    finally:
        services.status.ui_closed()
        services.ctx.events.unsubscribe(feed)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        ended = not ui.sessions.is_live(request[SESSION])
        await ws.close(code=SESSION_ENDED if ended else 1000)
    return ws


async def _read_client(
    ws: web.WebSocketResponse, status: StatusTracker, touch: Callable[[], None]
) -> None:
    async for frame in ws:
        if frame.type != WSMsgType.TEXT:
            continue
        with contextlib.suppress(BadRequest):  # a frame that is not ours: ignored
            kind = parse_json_object(frame.data.encode(), what="frame").get("type")
            if kind == "ping":
                await ws.send_json(views.pong_event())
            elif kind == "activity":  # the user typed, clicked or scrolled
                status.activity()
                touch()


async def _send_events(
    ws: web.WebSocketResponse, feed: Feed, reader: asyncio.Task[None], ended: asyncio.Event
) -> None:
    """Until the client goes, the feed ends or the session does."""
    session_end = asyncio.ensure_future(ended.wait())
    try:
        while not reader.done() and not ended.is_set():
            getter = asyncio.ensure_future(feed.get())
            try:
                await asyncio.wait(
                    {getter, reader, session_end}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:  # the page went, the session ended, or this handler is being cancelled
                if not getter.done():
                    await _cancelled(getter)
            if getter.cancelled():
                return
            # What queued meanwhile goes too, without a wait per event (a burst of messages).
            events = [getter.result()]
            while events[-1] is not None and not feed.empty():
                events.append(feed.get_nowait())
            for event in events:
                if event is None or ended.is_set():  # a logout stops the rest at once
                    return
                await ws.send_json(views.event_json(event))
    finally:
        await _cancelled(session_end)


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel a helper task and wait for it to end, so that none is left pending."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

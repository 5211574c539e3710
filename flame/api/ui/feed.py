"""The live feed: one WebSocket per open page (docs/UI_API.md, "Live events"). The session and
Origin were checked by the middlewares before the upgrade."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import WSMsgType, web

from flame.api.ui import views
from flame.api.ui.state import UI
from flame.core.encoding import parse_json_object
from flame.errors import BadRequest
from flame.services.events import Feed
from flame.services.status import StatusTracker

HEARTBEAT_S = 30.0
FRAME_MAX_BYTES = 64 * 1024


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ui = request.app[UI]
    services = ui.services
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=FRAME_MAX_BYTES)
    await ws.prepare(request)
    feed = services.ctx.events.subscribe()
    await ws.send_json(views.hello_event(ui.me()))
    await ws.send_json(views.my_status_json(services.status.view()))
    services.status.ui_opened()  # an open UI keeps the status online (PROTOCOL.md §12.2)
    reader = asyncio.create_task(_read_client(ws, services.status, ui.touch))
    try:
        await _send_events(ws, feed, reader)
    except ConnectionResetError:
        pass
    finally:
        services.status.ui_closed()
        services.ctx.events.unsubscribe(feed)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
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


async def _send_events(ws: web.WebSocketResponse, feed: Feed, reader: asyncio.Task[None]) -> None:
    """Until the client goes or the feed ends."""
    while not reader.done():
        getter = asyncio.ensure_future(feed.get())
        done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            return
        event = getter.result()
        if event is None:
            return
        await ws.send_json(views.event_json(event))

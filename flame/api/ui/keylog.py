"""The directory's key log as this daemon checked it, and its alarms (docs/UI_API.md, "Key log";
PROTOCOL.md §18.6)."""

from __future__ import annotations

from aiohttp import web

from flame.api.ui import views
from flame.api.ui.state import UI


async def key_log(request: web.Request) -> web.Response:
    keylog = request.app[UI].services.keylog
    await keylog.load()
    size = None if keylog.head is None else keylog.head.size
    return web.json_response(views.key_log_json(keylog.state, size, await keylog.alarms()))

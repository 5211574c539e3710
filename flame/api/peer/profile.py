"""The remote API's profile route (PROTOCOL.md §12.1): this user's signed profile, for contacts."""

from __future__ import annotations

from aiohttp import web

from flame.api.peer.state import PEER
from flame.errors import NotFound
from flame.store.profiles import get_profile

GET_BODY_LIMIT = 1024


async def profile(request: web.Request) -> web.Response:
    state = request.app[PEER]
    await state.signed_body(request, GET_BODY_LIMIT)
    ctx = state.services.ctx
    stored = await get_profile(ctx.db, ctx.me)
    if stored is None:
        raise NotFound(f"{ctx.me} has not published a profile.", code="no_profile")
    return web.json_response(stored.record().model_dump())

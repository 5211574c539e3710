"""Logging in and out (docs/UI_API.md, "Session"). The first successful login unlocks the daemon."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import Field

from flame.api.ui.session import SESSION, SESSION_COOKIE
from flame.api.ui.state import UI
from flame.core.models import Wire
from flame.errors import WrongPassword
from flame.net.http import parse_model


class LoginBody(Wire):
    password: str = Field(max_length=1024)


async def login(request: web.Request) -> web.Response:
    ui = request.app[UI]
    now = ui.holder.clock.now
    client = request.remote or "unknown"
    ui.throttle.take(client, now())
    body = parse_model(LoginBody, await ui.body(request))
    async with ui.throttle.kdf_slots:
        await asyncio.sleep(ui.throttle.penalty_s(client))
        try:
            await ui.unlock(body.password)
        except WrongPassword:
            ui.throttle.failed(client)
            raise
    ui.throttle.succeeded(client)
    ui.services.status.activity()
    token = ui.sessions.create(now())
    response = web.json_response(ui.me())
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response


async def logout(request: web.Request) -> web.Response:
    request.app[UI].sessions.revoke(request[SESSION])
    response = web.json_response({})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response(request.app[UI].me())

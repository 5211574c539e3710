"""Logging in and out (docs/UI_API.md, "Session"). The first successful login unlocks the daemon."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from flame.api.ui import views
from flame.api.ui.session import SESSION, cookie_name
from flame.api.ui.state import UI
from flame.core.models import Wire
from flame.errors import WrongPassword
from flame.net.http import parse_model


class LoginBody(Wire):
    password: str = Field(max_length=1024)


async def login_info(request: web.Request) -> web.Response:
    """Whose daemon this is, for the login page: locked or not, before any session."""
    return web.json_response(views.login_info_json(request.app[UI].holder.account.username))


async def login(request: web.Request) -> web.Response:
    ui = request.app[UI]
    now = ui.holder.clock.now
    body = parse_model(LoginBody, await ui.body(request))
    throttle = ui.throttle
    async with throttle.checking:  # one password check at a time, whoever asks
        throttle.admit(now())
        try:
            await ui.unlock(body.password)
        except WrongPassword:
            throttle.failed(now())
            raise
    throttle.succeeded()
    ui.services.status.activity()
    cookie, page_token = ui.sessions.create(now())
    response = web.json_response(views.login_json(ui.me(), page_token))
    response.set_cookie(
        cookie_name(ui.origin.port), cookie, httponly=True, samesite="Strict", path="/"
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """Ends the session; its live feeds close too (feed.py waits on the session's end)."""
    ui = request.app[UI]
    ui.sessions.revoke(request[SESSION])
    response = web.json_response({})
    response.del_cookie(cookie_name(ui.origin.port), path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response(request.app[UI].me())

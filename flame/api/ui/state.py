"""What the UI routes share: the services (through their holder: a locked daemon has none), the
sessions and login throttle, the UI's own origin, the unlock that a first successful login
performs, and when the UI was last used (for security.lock_after_idle_s)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from flame.api.ui import views
from flame.api.ui.guard import UiOrigin
from flame.api.ui.session import API_PREFIX, LoginThrottle, Sessions
from flame.core.crypto import fingerprint
from flame.core.models import check_username
from flame.errors import NotFound
from flame.net.http import Handler, read_body
from flame.services.registry import ServiceHolder, Services

Unlock = Callable[[str], Awaitable[None]]


@dataclass
class UiState:
    holder: ServiceHolder
    unlock: Unlock
    origin: UiOrigin
    throttle: LoginThrottle
    sessions: Sessions = field(default_factory=Sessions)
    last_activity: float = 0.0  # of the user: an API request, or the page saying it was used

    @property
    def services(self) -> Services:
        return self.holder.services

    def touch(self) -> None:
        self.last_activity = self.holder.clock.now()

    def me(self) -> views.Json:
        ctx = self.services.ctx
        return views.me_json(
            ctx.me,
            fingerprint(ctx.keys.account.identity_key),
            self.services.contacts.directory_state,
        )

    async def body(self, request: web.Request, limit: int | None = None) -> bytes:
        max_bytes = self.holder.settings.daemon.max_body_bytes
        return await read_body(request, max_bytes if limit is None else limit)


UI = web.AppKey("ui", UiState)


def activity_middleware(state: UiState) -> Middleware:
    """Every API request (after the session check) counts as the user's activity."""

    @web.middleware
    async def touch(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX):
            state.touch()
        return await handler(request)

    return touch


def path_name(request: web.Request, *, code: str = "unknown_user") -> str:
    """The username in the path; one that cannot be a username is simply not found."""
    return username_or_404(request.match_info["name"], code=code)


def username_or_404(name: str, *, code: str = "unknown_user") -> str:
    try:
        return check_username(name)
    except ValueError as exc:
        raise NotFound(f"There is no user named {name!r}.", code=code) from exc

"""Sessions of the local UI (docs/UI_API.md, "Rules"): the one session check, done by a middleware
for every route under /ui/api/ except the login, and the login throttle.

Tokens are random 256-bit values in memory: a restart logs everybody out, which is fine locally.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from flame.errors import AuthError, TooManyRequests
from flame.net.http import Handler

SESSION_COOKIE = "flame_session"
API_PREFIX = "/ui/api/"
PUBLIC_ROUTES = frozenset({"/ui/api/login"})  # everything else under API_PREFIX needs a session
SESSION = web.RequestKey("session", str)  # the checked token, for the handlers that need it


@dataclass
class Sessions:
    lifetime_s: float = 24 * 3600
    tokens: dict[str, float] = field(default_factory=dict)

    def create(self, now: float) -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = now + self.lifetime_s
        return token

    def check(self, request: web.Request, now: float) -> str:
        token = request.cookies.get(SESSION_COOKIE, "")
        expiry = self.tokens.get(token)
        if expiry is None or expiry < now:
            self.tokens.pop(token, None)
            raise AuthError("Log in first.")
        return token

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    def revoke_all(self) -> None:
        """The daemon locked: every page logs in again."""
        self.tokens.clear()


def require_session(sessions: Sessions, now: Callable[[], float]) -> Middleware:
    """The session check: every API route but the login, the WebSocket included."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX) and request.path not in PUBLIC_ROUTES:
            request[SESSION] = sessions.check(request, now())
        return await handler(request)

    return check


@dataclass
class LoginThrottle:
    """A token bucket per client plus a growing delay after failures; Argon2 runs one at a time,
    so guessing cannot starve the daemon."""

    burst: int
    refill_s: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    kdf_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    def take(self, client: str, now: float) -> None:
        tokens, stamp = self.buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) / self.refill_s)
        if tokens < 1:
            wait = (1 - tokens) * self.refill_s
            raise TooManyRequests(
                f"Too many login attempts; try again in {wait:.0f} s.",
                retry_after_s=wait,
                code="too_many_attempts",
            )
        self.buckets[client] = (tokens - 1, now)

    def penalty_s(self, client: str) -> float:
        count = self.failures.get(client, 0)
        return 0.0 if count == 0 else min(8.0, 0.25 * 2 ** (count - 1))

    def failed(self, client: str) -> None:
        self.failures[client] = self.failures.get(client, 0) + 1

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)

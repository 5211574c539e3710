"""The local UI is an attack surface (DESIGN §9): Host allowlist against DNS rebinding, Origin on
every state change and on the WebSocket upgrade, sessions, login throttling, strict headers.

aiohttp does none of this by itself, so every route of the UI app goes through these middlewares.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from flame.errors import AuthError, Forbidden, TooManyRequests
from flame.net.http import Handler, json_error

SESSION_COOKIE = "flame_session"
SAFE_METHODS = {"GET", "HEAD"}
# Routes whose body is a file streamed as application/octet-stream, not JSON (net/ui/files.py).
STREAMED_ROUTES = frozenset({"ui_file_upload"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class UiOrigin:
    """The names this UI answers to; the port is known only once the listener is bound."""

    def __init__(self, port: int = 0) -> None:
        self.port = port

    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}

    def origins(self) -> set[str]:
        return {f"http://{host}" for host in self.hosts()}


def build_middlewares(origin: UiOrigin) -> list[Callable[..., object]]:
    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if not response.prepared:  # a WebSocket is already past its headers
            for name, value in HEADERS.items():  # a handler's stricter CSP (a file) stays
                response.headers.setdefault(name, value)
            if request.path.startswith("/ui/api/"):
                response.headers["Cache-Control"] = "no-store"
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def host_and_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Host", "") not in origin.hosts():
            return json_error(421, "bad_host", "This address is not served here.")
        is_upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method not in SAFE_METHODS or is_upgrade:
            if request.headers.get("Origin", "") not in origin.origins():
                return json_error(
                    403,
                    "bad_origin",
                    "Requests that change anything must come from this UI's page.",
                )
        if request.method not in SAFE_METHODS and request.content_type != "application/json":
            streamed = request.match_info.route.name in STREAMED_ROUTES
            if not (streamed and request.content_type == "application/octet-stream"):
                return json_error(415, "bad_content_type", "Send JSON (application/json).")
        return await handler(request)

    return [headers, host_and_origin]


@dataclass
class Sessions:
    """Random 256-bit tokens in memory: a restart logs everybody out, which is fine locally."""

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


def require_origin_for_ws(request: web.Request, origin: UiOrigin) -> None:
    if request.headers.get("Origin", "") not in origin.origins():
        raise Forbidden("The live feed must be opened from this UI's page.", code="bad_origin")

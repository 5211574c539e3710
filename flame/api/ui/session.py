"""Sessions of the local UI (docs/UI_API.md, "Rules"): the one session check, done by a middleware
for every route under /ui/api/ except the login, and the login throttle.

A browser sends a cookie of 127.0.0.1 to every port of 127.0.0.1, so the cookie alone proves
nothing: any other local server gets it. A session is two random 256-bit values: the cookie
(named after this UI's port, so that two UIs on one machine keep their own) and the page token,
which the page keeps in its own origin's storage and sends with every request, where no other
port can read it. The server requires both. They live in memory: a restart logs everybody out.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from flame.errors import AuthError, TooManyRequests
from flame.net.http import Handler

API_PREFIX = "/ui/api/"
PUBLIC_ROUTES = frozenset({"/ui/api/login"})  # everything else under API_PREFIX needs a session
SESSION = web.RequestKey("session", str)  # the checked cookie value, for the handlers that need it
TOKEN_HEADER = "X-Flame-Token"
# A browser's WebSocket cannot send a header but does send the subprotocols it asks for: the page
# asks for WS_PROTOCOL and WS_TOKEN_PREFIX + token, and the server answers WS_PROTOCOL alone.
WS_PROTOCOL = "flame"
WS_TOKEN_PREFIX = "flame-token."
# GET routes that an element (img, video, audio, a download link) loads: no header there either,
# so these take the token as the query parameter TOKEN_QUERY.
ELEMENT_ROUTES = frozenset(
    {"ui_file_content", "ui_avatar", "ui_group_picture", "ui_group_file_content"}
)
TOKEN_QUERY = "token"


def cookie_name(port: int) -> str:
    """One cookie per UI port: two daemons' UIs on one machine do not overwrite each other's."""
    return f"flame_session_{port}"


@dataclass(eq=False)
class Session:
    page_token: str
    expires_at: float
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # its live feeds close on it


@dataclass
class Sessions:
    lifetime_s: float = 24 * 3600
    by_cookie: dict[str, Session] = field(default_factory=dict)

    def create(self, now: float) -> tuple[str, str]:
        """A new session: (the cookie's value, the page token)."""
        cookie, page_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.by_cookie[cookie] = Session(page_token, now + self.lifetime_s)
        return cookie, page_token

    def check(self, cookie: str, page_token: str, now: float) -> str:
        session = self.by_cookie.get(cookie)
        if session is None or session.expires_at < now:
            self.revoke(cookie)
            raise AuthError("Log in first.")
        if not secrets.compare_digest(page_token.encode(), session.page_token.encode()):
            raise AuthError("Log in first.")
        return cookie

    def live(self, cookie: str) -> Session:
        """The session of a checked cookie (AuthError if it ended since)."""
        session = self.by_cookie.get(cookie)
        if session is None:
            raise AuthError("Log in first.")
        return session

    def revoke(self, cookie: str) -> None:
        """A logout: the session's live feeds close now."""
        session = self.by_cookie.pop(cookie, None)
        if session is not None:
            session.ended.set()

    def revoke_all(self) -> None:
        """The daemon locks: every page logs in again. The lock closes the live feeds itself,
        last, so that a page that sees its feed end sees the lock done."""
        self.by_cookie.clear()

    def is_live(self, cookie: str) -> bool:
        return cookie in self.by_cookie


def page_token(request: web.Request) -> str:
    """The page token, from where this kind of request can carry it (docs/UI_API.md, "Rules")."""
    token = request.headers.get(TOKEN_HEADER)
    if token is not None:
        return token
    if request.headers.get("Upgrade", "").lower() == "websocket":
        offered = request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        for protocol in (p.strip() for p in offered):
            if protocol.startswith(WS_TOKEN_PREFIX):
                return protocol.removeprefix(WS_TOKEN_PREFIX)
        return ""
    if request.method in {"GET", "HEAD"} and request.match_info.route.name in ELEMENT_ROUTES:
        return request.query.get(TOKEN_QUERY, "")
    return ""


def require_session(
    sessions: Sessions, port: Callable[[], int], now: Callable[[], float]
) -> Middleware:
    """The session check: every API route but the login, the WebSocket included."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX) and request.path not in PUBLIC_ROUTES:
            cookie = request.cookies.get(cookie_name(port()), "")
            request[SESSION] = sessions.check(cookie, page_token(request), now())
        return await handler(request)

    return check


@dataclass
class LoginThrottle:
    """One throttle for the whole daemon, whoever asks: a local process can give each guess a
    source address of its own (all of 127.0.0.0/8 is loopback), so nothing is counted per source.

    Password checks run one at a time. After the n-th wrong password in a row the next check waits
    `delay_s(n)`: nothing after the first (a typo), then first_delay_s, doubling up to
    max_delay_s. A login asked for sooner is refused at once (429, Retry-After) without running
    Argon2 and without counting as a failure, so guessing costs the guesser one check per
    max_delay_s at most, and once it stops the user waits at most max_delay_s. A right password
    resets the count (docs/UI_API.md, "Session")."""

    first_delay_s: float = 1.0
    max_delay_s: float = 15.0
    failures: int = 0  # wrong passwords in a row
    open_at: float = 0.0  # no check before this time
    checking: asyncio.Lock = field(default_factory=asyncio.Lock)

    def delay_s(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** (failures - 2))

    def admit(self, now: float) -> None:
        """Called holding `checking`: refuse a check asked for before the delay is over."""
        if now < self.open_at:
            wait = self.open_at - now
            raise TooManyRequests(
                f"Too many login attempts; try again in {math.ceil(wait)} s.",
                retry_after_s=wait,
                code="too_many_attempts",
            )

    def failed(self, now: float) -> None:
        self.failures += 1
        self.open_at = now + self.delay_s(self.failures)

    def succeeded(self) -> None:
        self.failures, self.open_at = 0, 0.0

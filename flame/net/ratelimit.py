"""Rate limits at the edge (PROTOCOL.md §12.5): a token bucket per remote address in front of every
route of an app, and one per authenticated user once a request's signature has verified.

Per user only after verification: a bucket keyed by a name anyone can claim would let a stranger
spend someone else's allowance. Over a limit: 429 `rate_limited` with Retry-After (whole seconds).
The browser UI has no such limits (its login has its own throttle, net/ui/guard.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from flame.core.ratelimit import TokenBuckets
from flame.errors import TooManyRequests
from flame.net.http import Handler, RequestVerifier


def _refuse(buckets: TokenBuckets, wait_s: float, who: str) -> TooManyRequests:
    seconds = buckets.retry_after_s(wait_s)
    return TooManyRequests(
        f"Too many requests from {who}; try again in {seconds} s.",
        retry_after_s=seconds,
        code="rate_limited",
    )


def address_limit(rate_per_s: float, burst: int, now: Callable[[], float]) -> Middleware:
    """Middleware: one bucket per remote address, taken before anything else is done."""
    buckets = TokenBuckets(rate_per_s, burst)

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = buckets.take(request.remote or "unknown", now())
        if wait > 0:
            raise _refuse(buckets, wait, "this address")
        return await handler(request)

    return limit


class LimitedVerifier(RequestVerifier):
    """A RequestVerifier that also takes a token from the authenticated user's bucket."""

    def __init__(
        self,
        audience: str,
        started_at: float,
        clock_now: Callable[[], float],
        *,
        rate_per_s: float,
        burst: int,
    ) -> None:
        super().__init__(audience, started_at, clock_now)
        self.senders = TokenBuckets(rate_per_s, burst)
        self.refused = 0  # requests refused with 429 so far (for the log and the tests)

    async def verify(
        self,
        request: web.Request,
        body: bytes,
        lookup: Callable[[str], Awaitable[bytes | None]],
        *,
        unsigned_body: bool = False,
    ) -> str:
        user = await super().verify(request, body, lookup, unsigned_body=unsigned_body)
        wait = self.senders.take(user, self.now())
        if wait > 0:
            self.refused += 1
            raise _refuse(self.senders, wait, user)
        return user

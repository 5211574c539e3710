"""Rate limits at the edge (PROTOCOL.md §12.5): a token bucket per remote address in front of every
route of an app. The per-caller limit, taken once a signature verified, is net/verify.py's.

Over a limit: 429 `rate_limited` with Retry-After (whole seconds). The browser UI has no such
limits (its login has its own throttle, api/ui/session.py).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from flame.core.ratelimit import TokenBuckets
from flame.net.http import Handler
from flame.net.verify import rate_limited


def address_limit(rate_per_s: float, burst: int, now: Callable[[], float]) -> Middleware:
    """Middleware: one bucket per remote address, taken before anything else is done."""
    buckets = TokenBuckets(rate_per_s, burst)

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = buckets.take(request.remote or "unknown", now())
        if wait > 0:
            raise rate_limited(buckets, wait, "this address")
        return await handler(request)

    return limit

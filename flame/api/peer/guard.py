"""What the remote API refuses before doing any work (PROTOCOL.md §12.4, §12.5): floods, per
remote address, and everything from a user this user blocked.

A blocked user is recognised by the `Flame-User` header, before the body is read, the signature
checked or anything decrypted. The header is not yet verified there, but a request that names
someone else cannot pass verification anyway, so nobody gets in by naming a blocked user, and
naming one only earns a 403. The answer is a bare `forbidden`: the blocked user is not told why.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from flame.core.signing import HEADER_USER
from flame.errors import Forbidden
from flame.net.http import Handler
from flame.net.ratelimit import address_limit
from flame.services.registry import ServiceHolder


def middlewares(holder: ServiceHolder) -> list[Middleware]:
    limits = holder.settings.limits

    @web.middleware
    async def refuse_blocked(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = request.headers.get(HEADER_USER)
        services = holder.current  # locked: no block list to read; the handler refuses (503)
        if user is not None and services is not None and await services.blocks.is_blocked(user):
            raise Forbidden("This request was refused.")
        return await handler(request)

    return [
        address_limit(
            limits.peer_rate_per_address, limits.peer_burst_per_address, holder.clock.now
        ),
        refuse_blocked,
    ]

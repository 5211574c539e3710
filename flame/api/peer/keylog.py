"""Key log heads between daemons (PROTOCOL.md §18.5): a signed request that succeeded hands the
head it carried to the key log, and its answer carries this daemon's. Nothing while locked or
appearing offline: a head would show that the daemon is up."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from flame.core.keylog import HEADER
from flame.core.signing import HEADER_USER
from flame.services.registry import ServiceHolder


def head_middleware(holder: ServiceHolder) -> Middleware:
    @web.middleware
    async def exchange_heads(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        services = holder.current
        caller = request.headers.get(HEADER_USER)
        if services is None or services.status.is_hidden or caller is None:
            return response
        if response.status < 300:
            theirs = request.headers.get(HEADER)
            if theirs is not None:
                services.keylog.observe(caller, theirs)
            mine = services.keylog.header()
            if mine is not None and not response.prepared:
                response.headers[HEADER] = mine
        return response

    return exchange_heads

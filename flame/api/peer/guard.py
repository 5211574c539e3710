"""What the remote API refuses before doing any work (PROTOCOL.md §12.4, §12.5): floods, per
remote address; and everything from a user this user blocked, once the request is proven theirs.

A blocked user is refused only after the request's signature verified (`refuse_blocked`, called by
state.py's `caller`), and before anything is decrypted: someone who cannot sign as a blocked user
gets exactly what naming anyone else would get (401 for a bad signature), so the block list
cannot be probed by naming people. The answer is a bare `forbidden`: the blocked user is not
told why.
"""

from __future__ import annotations

from aiohttp.typedefs import Middleware

from flame.errors import Forbidden
from flame.net.ratelimit import address_limit
from flame.services.registry import ServiceHolder, Services


def middlewares(holder: ServiceHolder) -> list[Middleware]:
    limits = holder.settings.limits
    return [
        address_limit(limits.peer_rate_per_address, limits.peer_burst_per_address, holder.clock.now)
    ]


async def refuse_blocked(services: Services, caller: str) -> None:
    """The verified caller, if this user blocked them: 403 `forbidden`, nothing more."""
    if await services.blocks.is_blocked(caller):
        raise Forbidden("This request was refused.")

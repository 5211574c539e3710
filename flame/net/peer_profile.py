"""The remote API's profile route (PROTOCOL.md §12.1), and the call that fetches a peer's profile.

Added to the peer app by peer_api.build; the peer guard (blocked users, rate limits) runs first.
"""

from __future__ import annotations

from aiohttp import web

from flame.core.models import Profile
from flame.errors import NotFound
from flame.net.http import read_body
from flame.net.peer_client import PEER_PREFIX, PeerClient, parse_reply
from flame.parts import Parts
from flame.roster import lookup_identity_key
from flame.store.profiles import get_profile

GET_BODY_LIMIT = 1024


def add_routes(app: web.Application, parts: Parts) -> None:
    async def profile(request: web.Request) -> web.Response:
        body = await read_body(request, GET_BODY_LIMIT)
        await parts.verifier.verify(request, body, lambda name: lookup_identity_key(parts, name))
        stored = await get_profile(parts.db, parts.me)
        if stored is None:
            raise NotFound(f"{parts.me} has not published a profile.", code="no_profile")
        return web.json_response(stored.record().model_dump())

    app.router.add_get(f"{PEER_PREFIX}/profile", profile)


async def fetch_profile(client: PeerClient, address: str, peer: str) -> Profile:
    """`peer`'s signed profile, not yet verified. Raises PeerUnreachable or PeerRefused (502
    `bad_reply` when the answer is not a well-formed profile)."""
    _, payload, _ = await client.request("GET", f"{address}{PEER_PREFIX}/profile", audience=peer)
    return parse_reply(Profile, payload)

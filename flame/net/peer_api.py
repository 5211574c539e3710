"""The remote API that other daemons call (PROTOCOL.md §7). Signed requests only, except hello.

UI routes never live here: this app listens on the peer port.
"""

from __future__ import annotations

from aiohttp import web

from flame.core.encoding import b64e
from flame.core.models import PROTOCOL_VERSIONS, EnvelopeBatch, Hello
from flame.errors import LockedError
from flame.messaging import receive_batch
from flame.net import peer_files, peer_guard, peer_profile, peer_relay
from flame.net.http import error_middleware, json_error, parse_model, read_body
from flame.parts import Parts
from flame.relay import ack_for
from flame.roster import lookup_identity_key

PARTS = web.AppKey("parts", Parts)
PREFIX = "/api/v1"
FEATURES = ["envelopes", "receipts", "relay", "profiles", "files"]
LOCKED_RETRY_S = 30


async def hello(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    reply = Hello(
        username=parts.me,
        identity_key=b64e(parts.account.identity_key),
        versions=list(PROTOCOL_VERSIONS),
        features=FEATURES,
        locked=parts.identity is None,
    )
    return web.json_response(reply.model_dump())


async def envelopes(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    body = await read_body(request, parts.settings.daemon.max_body_bytes)
    signer = await parts.verifier.verify(
        request, body, lambda name: lookup_identity_key(parts, name)
    )
    if parts.identity is None:
        response = json_error(
            503, LockedError.code, "This daemon is locked; its user has not logged in yet."
        )
        response.headers["Retry-After"] = str(LOCKED_RETRY_S)
        return response
    batch = parse_model(EnvelopeBatch, body, what="batch")
    status, result = await receive_batch(parts, batch)
    if request.query.get("ack") == "1":  # a relay handing over deposits wants our signed ack
        result = result.model_copy(update={"ack": ack_for(parts, signer, result)})
    payload = result.model_dump(exclude_none=True)
    if status != 200:
        first = next(r for r in result.results if r.status == "rejected")
        return web.json_response(
            {"error": first.error, "message": first.message, **payload}, status=status
        )
    return web.json_response(payload)


def build(parts: Parts) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, *peer_guard.middlewares(parts)],
        client_max_size=parts.settings.daemon.max_body_bytes,
    )
    app[PARTS] = parts
    app.router.add_get(f"{PREFIX}/hello", hello)
    app.router.add_post(f"{PREFIX}/envelopes", envelopes)
    peer_files.add_routes(app, parts, PREFIX)
    peer_relay.add_routes(app, parts, PREFIX)
    peer_profile.add_routes(app, parts)
    return app

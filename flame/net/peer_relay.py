"""Peer routes of store-and-forward (PROTOCOL.md §13.3): deposit, collect, acknowledge."""

from __future__ import annotations

from aiohttp import web

from flame.core.models import CollectRequest, DepositBatch, RelayAck
from flame.net.http import parse_model, read_body
from flame.parts import Parts
from flame.relay import accept_ack, accept_deposits, collect
from flame.roster import lookup_identity_key

PARTS = web.AppKey("relay_parts", Parts)


async def _signed(request: web.Request) -> tuple[Parts, str, bytes]:
    parts = request.app[PARTS]
    body = await read_body(request, parts.settings.daemon.max_body_bytes)
    user = await parts.verifier.verify(request, body, lambda n: lookup_identity_key(parts, n))
    parts.require_identity()
    return parts, user, body


async def deposits(request: web.Request) -> web.Response:
    parts, depositor, body = await _signed(request)
    result = await accept_deposits(parts, depositor, parse_model(DepositBatch, body))
    payload = result.model_dump(exclude_none=True)
    if all(r.status == "rejected" for r in result.results):
        first = result.results[0]
        status = 429 if first.error == "over_quota" else 400
        response = web.json_response(
            {"error": first.error, "message": first.message, **payload}, status=status
        )
        if status == 429:
            response.headers["Retry-After"] = str(int(parts.settings.daemon.relay_retry_s))
        return response
    return web.json_response(payload)


async def collect_route(request: web.Request) -> web.Response:
    parts, recipient, body = await _signed(request)
    req = parse_model(CollectRequest, body)
    return web.json_response((await collect(parts, recipient, req.limit)).model_dump())


async def ack(request: web.Request) -> web.Response:
    parts, recipient, body = await _signed(request)
    dropped = await accept_ack(parts, recipient, parse_model(RelayAck, body, what="ack"))
    return web.json_response({"dropped": dropped})


def add_routes(app: web.Application, parts: Parts, prefix: str) -> None:
    app[PARTS] = parts
    app.router.add_post(f"{prefix}/relay/deposits", deposits)
    app.router.add_post(f"{prefix}/relay/collect", collect_route)
    app.router.add_post(f"{prefix}/relay/ack", ack)

"""Peer routes of store-and-forward (PROTOCOL.md §13.3): deposit, collect, acknowledge."""

from __future__ import annotations

from aiohttp import web

from flame.api.peer.envelopes import batch_refused
from flame.api.peer.state import PEER
from flame.core.models import CollectRequest, DepositBatch, RelayAck
from flame.errors import TooManyRequests
from flame.net.http import parse_model


async def deposits(request: web.Request) -> web.Response:
    state = request.app[PEER]
    services = state.services
    depositor, body = await state.signed_body(request)
    services.ctx.keys.identity()
    result = await services.relay.accept_deposits(depositor, parse_model(DepositBatch, body))
    if all(r.status == "rejected" for r in result.results):
        first = result.results[0]
        if first.error == "over_quota":
            raise TooManyRequests(
                first.message or "Over quota.",
                retry_after_s=services.ctx.settings.daemon.relay_retry_s,
                code="over_quota",
                **result.model_dump(exclude_none=True),
            )
        raise batch_refused(400, result)
    return web.json_response(result.model_dump(exclude_none=True))


async def collect(request: web.Request) -> web.Response:
    state = request.app[PEER]
    recipient, body = await state.signed_body(request)
    state.services.ctx.keys.identity()
    req = parse_model(CollectRequest, body)
    return web.json_response(
        (await state.services.relay.collect(recipient, req.limit)).model_dump()
    )


async def ack(request: web.Request) -> web.Response:
    state = request.app[PEER]
    recipient, body = await state.signed_body(request)
    state.services.ctx.keys.identity()
    relay_ack = parse_model(RelayAck, body, what="ack")
    dropped = await state.services.relay.accept_ack(recipient, relay_ack)
    return web.json_response({"dropped": dropped})

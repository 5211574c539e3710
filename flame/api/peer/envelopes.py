"""The remote API's hello and envelopes routes (PROTOCOL.md §7.1, §7.2)."""

from __future__ import annotations

from aiohttp import web

from flame.api.peer.state import PEER
from flame.core.actions import TYPING_RETRY_AFTER_S
from flame.core.encoding import b64e
from flame.core.hello import Hello, PublicHello
from flame.core.models import BatchResult, EnvelopeBatch
from flame.errors import BadRequest, RequestError, TooManyRequests
from flame.net.http import parse_model


async def hello(request: web.Request) -> web.Response:
    """Who this is, to a member whose request verified; to anyone else only whether it is locked
    (PROTOCOL.md §7.1). A user who appears offline is locked to everyone (§12.2)."""
    state = request.app[PEER]
    holder = state.holder
    if await state.member(request) is None:
        public = PublicHello(locked=state.is_locked or not holder.is_unlocked)
        return web.json_response(public.model_dump())
    reply = Hello(
        username=holder.account.username,
        identity_key=b64e(holder.account.identity_key),
        versions=list(holder.settings.security.versions),
        features=list(holder.features),
        locked=False,
    )
    return web.json_response(reply.model_dump())


async def envelopes(request: web.Request) -> web.Response:
    state = request.app[PEER]
    services = state.services
    signer, body = await state.signed_body(request)
    services.ctx.keys.identity()  # locked: 503, and the sender keeps the envelopes queued
    wants_ack = ack_asked(request)  # before anything is stored
    batch = parse_model(EnvelopeBatch, body, what="batch")
    status, result = await services.inbox.receive_batch(batch)
    if wants_ack:  # a relay handing over deposits wants our signed ack
        result = result.model_copy(update={"ack": services.relay.ack_for(signer, result)})
    if status != 200:
        raise batch_refused(status, result)
    return web.json_response(result.model_dump(exclude_none=True))


def ack_asked(request: web.Request) -> bool:
    """The route's one query, read from the raw text: exactly `ack=1`, or none (§13.3)."""
    query = request.rel_url.raw_query_string
    if query not in ("", "ack=1"):
        raise BadRequest("The only query this route takes is ack=1 (PROTOCOL.md §13.3).")
    return query == "ack=1"


def batch_refused(status: int, result: BatchResult) -> RequestError:
    """A batch with refusals: the first refusal's code and sentence, and every result beside them
    (PROTOCOL.md §7.2)."""
    first = next(r for r in result.results if r.status == "rejected")
    return RequestError(
        first.message or "Refused.",
        code=first.error,
        status=status,
        # The one per-envelope 429: a flood of typing notices (PROTOCOL.md §17.5).
        retry_after_s=TYPING_RETRY_AFTER_S if status == TooManyRequests.status else None,
        **result.model_dump(exclude_none=True),
    )

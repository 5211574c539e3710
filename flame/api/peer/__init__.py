"""The remote API that other daemons call (PROTOCOL.md §7): signed requests only, except hello.
`build` lists every route. UI routes never live here: this app listens on the peer port."""

from __future__ import annotations

from aiohttp import web

from flame.api.peer import envelopes, files, group_files, guard, keylog, profile, relay, schema
from flame.api.peer.state import PEER, PREFIX, PeerState
from flame.net.http import error_middleware
from flame.net.verify import RequestVerifier
from flame.services.registry import ServiceHolder


def build(holder: ServiceHolder, verifier: RequestVerifier) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, *guard.middlewares(holder), keylog.head_middleware(holder)],
        client_max_size=holder.settings.daemon.max_body_bytes,
    )
    app[PEER] = PeerState(holder, verifier)
    router = app.router
    router.add_get(f"{PREFIX}/hello", envelopes.hello)
    router.add_post(f"{PREFIX}/envelopes", envelopes.envelopes)
    router.add_get(f"{PREFIX}/profile", profile.profile)
    router.add_get(PREFIX + "/files/{transfer_id}", files.status)
    router.add_put(PREFIX + "/files/{transfer_id}/chunks", files.put_chunks)
    router.add_get(
        PREFIX + "/group-files/{author}/{transfer_id}/chunks", group_files.get_chunks
    )  # PROTOCOL.md §19.7
    router.add_post(f"{PREFIX}/relay/deposits", relay.deposits)
    router.add_post(f"{PREFIX}/relay/collect", relay.collect)
    router.add_post(f"{PREFIX}/relay/ack", relay.ack)
    router.add_get(f"{PREFIX}/openapi.json", schema.openapi)
    return app

"""`GET /ui/api/diagnostics` (docs/UI_API.md, "Diagnostics"): what this daemon still holds on its
way to others, read-only. The chaos harness reads it once everything is quiet, so that it never
opens a daemon's database. Added to the UI app by ui/api.build."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from flame.parts import Parts
from flame.store import outbox as outbox_store
from flame.store import relay as relay_store


def add_routes(
    app: web.Application, parts: Parts, check_session: Callable[[web.Request], str]
) -> None:
    async def diagnostics(request: web.Request) -> web.Response:
        check_session(request)
        return web.json_response(
            {
                "outbox": await outbox_store.pending_count(parts.db),
                "relay_deposits": await relay_store.held_count(parts.db),
            }
        )

    app.router.add_get("/ui/api/diagnostics", diagnostics)

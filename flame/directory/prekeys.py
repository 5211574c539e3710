"""The directory's version 2 routes: prekeys (PROTOCOL.md §14.3), which a user publishes signed
for its ratchet identity and anyone enrolled claims to start a session (the directory checks every
signature it stores, though claimers verify them again with the key they pinned); and the
directory's OpenAPI document (§16)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from flame.core.openapi import directory_api
from flame.core.prekeys import PrekeyClaim, PrekeyCount, PrekeyUpload, verify_prekey
from flame.directory import prekey_store, store
from flame.errors import BadRequest, NotFound
from flame.net.http import parse_model, read_body

PREFIX = "/dir/v1"
OPENAPI = json.dumps(directory_api(), ensure_ascii=False).encode()
Authenticate = Callable[[web.Request, bytes], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class PrekeyRoutes:
    """The routes, given the app's parts key and its request authentication (directory/app.py)."""

    parts: web.AppKey[Any]
    authenticate: Authenticate

    async def put_prekeys(self, request: web.Request) -> web.Response:
        parts = request.app[self.parts]
        body = await read_body(request, parts.settings.max_body_bytes)
        user = await self.authenticate(request, body)
        upload = parse_model(PrekeyUpload, body, what="prekeys")
        identity_key = await store.identity_key_of(parts.db, user)
        assert identity_key is not None  # authenticate() found it
        records = [*upload.one_time, upload.fallback]
        if upload.fallback.fallback is not True or any(r.fallback for r in upload.one_time):
            raise BadRequest("One-time keys and the fallback key must say which they are.")
        for record in records:
            if record.username != user or record.identity != upload.fallback.identity:
                raise BadRequest("Every prekey must be the caller's, of one ratchet identity.")
            if not verify_prekey(record, identity_key):
                raise BadRequest("A prekey's signature does not verify.", code="bad_signature")
        left = await prekey_store.replace(parts.db, user, records)
        return web.json_response(PrekeyCount(one_time_left=left).model_dump())

    async def count_prekeys(self, request: web.Request) -> web.Response:
        user = await self.authenticate(request, b"")
        left = await prekey_store.count(request.app[self.parts].db, user)
        return web.json_response(PrekeyCount(one_time_left=left).model_dump())

    async def claim_prekey(self, request: web.Request) -> web.Response:
        await self.authenticate(request, b"")
        name = request.match_info["name"]
        record = await prekey_store.claim(request.app[self.parts].db, name)
        if record is None:
            raise NotFound(f"{name!r} has published no prekeys.", code="no_prekeys")
        return web.json_response(PrekeyClaim(prekey=record).model_dump())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_put(f"{PREFIX}/prekeys", self.put_prekeys)
        app.router.add_get(f"{PREFIX}/prekeys", self.count_prekeys)
        app.router.add_post(f"{PREFIX}/prekeys/{{name}}/claim", self.claim_prekey)


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI, content_type="application/json")

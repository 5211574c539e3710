"""GET /api/v1/openapi.json: the remote API's OpenAPI 3.1 document (PROTOCOL.md §16), unsigned."""

from __future__ import annotations

import functools
import json

from aiohttp import web

from flame.core.openapi import remote_api


@functools.cache
def _body() -> bytes:
    return json.dumps(remote_api(), ensure_ascii=False).encode()


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json")

"""HTTP plumbing shared by the directory and the daemon's two apps: errors as JSON, bounded
bodies, and verification of signed requests (PROTOCOL.md §4)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from flame.core.encoding import parse_json_object
from flame.core.signing import NonceCache, SignedRequest
from flame.errors import AuthError, BadRequest, FlameError, TooLarge, TooManyRequests

log = logging.getLogger("flame.http")
M = TypeVar("M", bound=BaseModel)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    response = web.json_response({"error": code, "message": message, **extra}, status=status)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """FlameError -> JSON with its status; aiohttp's own HTTP errors -> JSON; anything else is a
    bug: logged with its traceback, and the caller sees only a 500 with no detail."""
    try:
        return await handler(request)
    except FlameError as exc:
        status = exc.status if 400 <= exc.status < 600 else 500
        response = json_error(status, exc.code, exc.message)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        return json_error(exc.status, code, exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "Something went wrong on this server.")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing (413) more than `limit` bytes before reading them."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"The body is larger than the limit of {limit} bytes.")
    try:
        return (
            await request.content.readexactly(request.content_length)
            if (request.content_length is not None)
            else await _read_limited(request, limit)
        )
    except web.HTTPRequestEntityTooLarge as exc:
        raise TooLarge(f"The body is larger than the limit of {limit} bytes.") from exc
    except (ConnectionError, EOFError) as exc:
        raise BadRequest("The body ended early.") from exc


async def _read_limited(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"The body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_model(model: type[M], raw: bytes, *, what: str = "body") -> M:
    """Parse untrusted JSON into a strict model; errors become a 400 naming the field."""
    data = parse_json_object(raw, what=what)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or what
        raise BadRequest(f"Invalid {what}: {where}: {first['msg']}.") from exc


class RequestVerifier:
    """Checks signed requests: audience, window, replay, signature. Keys come from `lookup`."""

    def __init__(self, audience: str, started_at: float, clock_now: Callable[[], float]) -> None:
        self.audience = audience
        # Whole seconds, rounded down: requests signed in the very second of a restart still pass
        # (a replay of one of those is the only gap: see PROTOCOL.md §4); rounding up would refuse
        # every honest peer for up to a second after each start.
        self.started_at = int(started_at)
        self.now = clock_now
        self.nonces = NonceCache()

    async def verify(
        self,
        request: web.Request,
        body: bytes,
        lookup: Callable[[str], Awaitable[bytes | None]],
        *,
        unsigned_body: bool = False,
    ) -> str:
        """Return the authenticated username, or raise AuthError (401). `unsigned_body`: the route
        streams its body and accepts UNSIGNED-PAYLOAD in place of its hash (PROTOCOL.md §11.4)."""
        signed = SignedRequest.from_headers(request.headers)
        identity_key = await lookup(signed.user)
        if identity_key is None:
            raise AuthError(f"Unknown user {signed.user!r}.", code="unknown_user")
        now = self.now()
        signed.check(
            identity_key,
            method=request.method,
            path_qs=request.raw_path,
            host=request.headers.get("Host", ""),
            expected_audience=self.audience,
            body=body,
            now=now,
            not_before=self.started_at,
            unsigned_body=unsigned_body,
        )
        self.nonces.check_and_add(signed.user, signed.nonce, now)
        return signed.user

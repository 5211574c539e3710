"""HTTP plumbing shared by the directory and the daemon's two apps: errors as JSON (the one place
that writes an error answer), bounded bodies, and strict parsing of JSON bodies into models."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from flame.core.encoding import parse_json_object
from flame.errors import BadRequest, FlameError, RequestTimeout, TooLarge

log = logging.getLogger("flame.http")
M = TypeVar("M", bound=BaseModel)

BODY_TIMEOUT_S = 60.0  # where the caller sets none (the peer listener's is a setting)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def error_response(exc: FlameError) -> web.Response:
    """A FlameError as the caller sees it: its status, code, sentence and extra fields, and
    Retry-After when it says when to come back (errors.py)."""
    status = exc.status if 400 <= exc.status < 600 else 500
    response = json_error(status, exc.code, exc.message, **exc.extra)
    retry_after = exc.retry_after_header()
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """FlameError -> JSON with its status; aiohttp's own HTTP errors -> JSON; anything else is a
    bug: logged with its traceback, and the caller sees only a 500 with no detail."""
    try:
        return await handler(request)
    except FlameError as exc:
        return error_response(exc)
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


async def read_body(request: web.Request, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The whole body, refusing (413) more than `limit` bytes before reading them, and (408) one
    that takes longer than `timeout_s` to arrive: a slow sender cannot hold a request open."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"The body is larger than the limit of {limit} bytes.")
    try:
        async with asyncio.timeout(timeout_s):
            return (
                await request.content.readexactly(request.content_length)
                if (request.content_length is not None)
                else await _read_limited(request, limit)
            )
    except TimeoutError as exc:
        raise RequestTimeout(f"The body did not arrive within {timeout_s:g} s.") from exc
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

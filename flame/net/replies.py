"""Reading what a peer or the directory answered, and shaping what is sent (PROTOCOL.md §7.2,
§8): every answer is untrusted data, so nothing here can crash the caller; one that does not parse
is the peer's fault (PeerRefused) or the peer's address's (PeerUnreachable)."""

from __future__ import annotations

import io
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from yarl import URL

from flame.core.encoding import parse_json_object
from flame.core.hello import PublicHello
from flame.core.models import BatchResult
from flame.errors import BadRequest, PeerRefused, PeerUnreachable

IN_ONE_PIECE = 1024 * 1024  # aiohttp writes bytes bodies up to this size in one piece
CODE_MAX = 64
MESSAGE_MAX = 300
M = TypeVar("M", bound=BaseModel)


def host_header(url: URL) -> str:
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return host if url.explicit_port is None else f"{host}:{url.explicit_port}"


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def json_of(payload: bytes) -> dict[str, Any] | None:
    """A peer's answer as a JSON object, through the one parser of untrusted JSON; None if it is
    not one (a hostile peer's answer is data, never a crash)."""
    try:
        return parse_json_object(payload, what="answer")
    except BadRequest:
        return None


def target_url(url: str) -> URL:
    """An address from a peer's presence record is the peer's data: one that does not parse (a
    port of 99999) fails that peer's call, never the caller."""
    try:
        return URL(url)
    except (ValueError, TypeError) as exc:
        raise PeerUnreachable(f"The address {url[:80]!r} is not a valid URL.") from exc


def refusal(status: int, payload: bytes, headers: Any) -> PeerRefused:
    """A 4xx/5xx answer as PeerRefused, with the peer's code and message when it sent them (cut
    to a sensible length: they end up in logs and in the user's view)."""
    data = json_of(payload) or {}
    code = str(data.get("error", "peer_refused"))[:CODE_MAX]
    message = str(data.get("message", f"HTTP {status}"))[:MESSAGE_MAX]
    refused = PeerRefused(message, status=status, code=code, retry_after_s=_retry_after(headers))
    refused.payload = payload
    return refused


def results_of(payload: bytes) -> BatchResult | None:
    """The per-envelope results (and a relay's signed ack) of a refused batch, whose body also
    carries `error` and `message` (PROTOCOL.md §7.2): parsed apart from them, since BatchResult
    admits no other fields."""
    data = json_of(payload)
    if data is None:
        return None
    try:
        fields = {"results": data.get("results"), "ack": data.get("ack")}
        return BatchResult.model_validate(fields, strict=False)
    except ValidationError:
        return None


def payload_of(body: bytes) -> bytes | io.BytesIO | None:
    """A body over a megabyte (a batch with an inline file) goes as a stream: aiohttp warns that
    a large bytes body is written in one piece that holds the event loop."""
    if not body:
        return None
    return io.BytesIO(body) if len(body) > IN_ONE_PIECE else body


def parse_reply(model: type[M], payload: bytes) -> M:
    """A peer's answer that does not parse is the peer's fault: PeerRefused, never a crash."""
    data = json_of(payload)
    try:
        if data is None:
            raise ValueError("not a JSON object")
        return model.model_validate(data)
    except ValueError as exc:  # ValidationError is one
        raise PeerRefused("The peer's answer is malformed.", status=502, code="bad_reply") from exc


def is_public_hello(payload: bytes) -> bool:
    """The answer is hello's public one (`{locked}` alone, PROTOCOL.md §7.1)."""
    try:
        PublicHello.model_validate(json_of(payload))
    except ValidationError:
        return False
    return True

"""Outbound calls to peers and the directory, signed (PROTOCOL.md §4).

aiohttp errors become PeerUnreachable; a 4xx/5xx answer becomes PeerRefused with the peer's code.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError
from yarl import URL

from flame.core.crypto import Identity
from flame.core.models import (
    BatchResult,
    Collected,
    CollectRequest,
    Deposit,
    DepositBatch,
    DirectoryEntry,
    DirectoryListing,
    EnrollRequest,
    Envelope,
    EnvelopeBatch,
    Hello,
    PresenceRecord,
    RelayAck,
    UserRecord,
)
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.errors import PeerRefused, PeerUnreachable

DIRECTORY_PREFIX = "/dir/v1"
PEER_PREFIX = "/api/v1"
IN_ONE_PIECE = 1024 * 1024  # aiohttp writes bytes bodies up to this size in one piece
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


def refusal(status: int, payload: bytes, headers: Any) -> PeerRefused:
    """A 4xx/5xx answer as PeerRefused, with the peer's code and message when it sent them."""
    code, message = "peer_refused", f"HTTP {status}"
    try:
        data = json.loads(payload)
        code, message = str(data.get("error", code)), str(data.get("message", message))
    except (ValueError, AttributeError):
        pass
    refused = PeerRefused(message, status=status, code=code, retry_after_s=_retry_after(headers))
    refused.payload = payload
    return refused


class PeerClient:
    """One aiohttp session for all outbound traffic. `identity` is None while the daemon is locked
    (only unsigned calls work then)."""

    def __init__(self, username: str, timeout_s: float, now: Callable[[], float]) -> None:
        self.username = username
        self.identity: Identity | None = None
        self.now = now
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 5.0)),
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=8, ttl_dns_cache=60),
            json_serialize=json.dumps,
        )

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        audience: str | None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send one request; sign it when `audience` is given. Returns status, body, headers."""
        target = URL(url)
        all_headers = {
            "Host": host_header(target),
            "Content-Type": "application/json",
            **(headers or {}),
        }
        if audience is not None:
            if self.identity is None:
                raise PeerUnreachable("The daemon is locked: it cannot sign requests.")
            all_headers.update(
                sign_request(
                    self.identity,
                    self.username,
                    audience,
                    method,
                    target.raw_path_qs,
                    all_headers["Host"],
                    body,
                    int(self.now()),
                )
            )
        try:
            async with self.session.request(
                method, target, data=_payload(body), headers=all_headers
            ) as response:
                payload = await response.read()
                status, response_headers = response.status, dict(response.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerUnreachable(
                f"Cannot reach {target.host}:{target.port}: {type(exc).__name__}"
            ) from exc
        if status >= 400:
            raise refusal(status, payload, response_headers)
        return status, payload, response_headers

    # --- the directory -----------------------------------------------------------------------

    async def enroll(self, directory_url: str, req: EnrollRequest) -> UserRecord:
        _, payload, _ = await self.request(
            "POST",
            directory_url + DIRECTORY_PREFIX + "/enroll",
            audience=None,
            body=req.model_dump_json().encode(),
        )
        return parse_reply(UserRecord, payload)

    async def directory_users(
        self,
        directory_url: str,
        etag: str | None,
    ) -> tuple[DirectoryListing | None, str | None]:
        """The user list, or (None, etag) when it has not changed since `etag`."""
        headers = {"If-None-Match": etag} if etag else {}
        status, payload, response_headers = await self.request(
            "GET",
            directory_url + DIRECTORY_PREFIX + "/users",
            audience=DIRECTORY_AUDIENCE,
            headers=headers,
        )
        new_etag = response_headers.get("ETag")
        if status == 304:
            return None, new_etag
        return parse_reply(DirectoryListing, payload), new_etag

    async def directory_user(self, directory_url: str, username: str) -> DirectoryEntry:
        _, payload, _ = await self.request(
            "GET",
            f"{directory_url}{DIRECTORY_PREFIX}/users/{username}",
            audience=DIRECTORY_AUDIENCE,
        )
        return parse_reply(DirectoryEntry, payload)

    async def report_presence(self, directory_url: str, record: PresenceRecord) -> None:
        await self.request(
            "PUT",
            directory_url + DIRECTORY_PREFIX + "/presence",
            audience=DIRECTORY_AUDIENCE,
            body=record.model_dump_json().encode(),
        )

    async def log_off(self, directory_url: str) -> None:
        await self.request(
            "DELETE", directory_url + DIRECTORY_PREFIX + "/presence", audience=DIRECTORY_AUDIENCE
        )

    # --- peers -------------------------------------------------------------------------------

    async def hello(self, address: str, peer: str) -> Hello:
        _, payload, _ = await self.request("GET", address + PEER_PREFIX + "/hello", audience=peer)
        return parse_reply(Hello, payload)

    async def deliver(
        self, address: str, peer: str, envelopes: list[Envelope], *, ack: bool = False
    ) -> BatchResult:
        """POST a batch (a relay asks for the recipient's signed ack). A 4xx that carries
        per-envelope results is returned, not raised."""
        body = EnvelopeBatch(envelopes=envelopes).model_dump_json().encode()
        path = PEER_PREFIX + "/envelopes" + ("?ack=1" if ack else "")
        try:
            _, payload, _ = await self.request("POST", address + path, audience=peer, body=body)
        except PeerRefused as exc:
            if exc.http_status in (400, 403, 409):
                partial = results_of(exc.payload)
                if partial is not None:
                    return partial
            raise
        return parse_reply(BatchResult, payload)

    # --- relays (PROTOCOL.md §13.3) ----------------------------------------------------------

    async def _post_model(self, address: str, peer: str, path: str, model: BaseModel) -> bytes:
        _, payload, _ = await self.request(
            "POST",
            address + PEER_PREFIX + path,
            audience=peer,
            body=model.model_dump_json().encode(),
        )
        return payload

    async def deposit(self, address: str, relay: str, deposits: list[Deposit]) -> BatchResult:
        """Leave envelopes with a relay. Raises PeerRefused when it took none of them."""
        try:
            payload = await self._post_model(
                address, relay, "/relay/deposits", DepositBatch(deposits=deposits)
            )
        except PeerRefused as exc:
            if exc.http_status in (400, 429):
                partial = results_of(exc.payload)
                if partial is None:
                    raise exc from None
                if any(r.status != "rejected" for r in partial.results):
                    return partial
            raise
        return parse_reply(BatchResult, payload)

    async def collect(self, address: str, relay: str, limit: int = 256) -> Collected:
        payload = await self._post_model(
            address, relay, "/relay/collect", CollectRequest(limit=limit)
        )
        return parse_reply(Collected, payload)

    async def relay_ack(self, address: str, relay: str, ack: RelayAck) -> None:
        await self._post_model(address, relay, "/relay/ack", ack)


def results_of(payload: bytes) -> BatchResult | None:
    """The per-envelope results of a refused batch, whose body also carries `error` and `message`
    (PROTOCOL.md §7.2): parsed apart from them, since BatchResult admits no other fields."""
    try:
        data = json.loads(payload)
        return BatchResult.model_validate({"results": data["results"]}, strict=False)
    except (ValueError, TypeError, KeyError, ValidationError):
        return None


def _payload(body: bytes) -> bytes | io.BytesIO | None:
    """A body over a megabyte (a batch with an inline file) goes as a stream: aiohttp warns that
    a large bytes body is written in one piece that holds the event loop."""
    if not body:
        return None
    return io.BytesIO(body) if len(body) > IN_ONE_PIECE else body


def parse_reply(model: type[M], payload: bytes) -> M:
    """A peer's answer that does not parse is the peer's fault: PeerRefused, never a crash."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise PeerRefused("The peer's answer is malformed.", status=502, code="bad_reply") from exc

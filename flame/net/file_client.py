"""Outbound calls of file transfers (PROTOCOL.md §11.3, §11.4): the receiver's status, and chunks
streamed in one signed request whose body is authenticated chunk by chunk, not by its hash.

aiohttp errors become PeerUnreachable; a 4xx/5xx answer becomes PeerRefused with the peer's code.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

import aiohttp
from pydantic import Field
from yarl import URL

from flame.core.models import Wire
from flame.core.signing import sign_request
from flame.errors import PeerRefused, PeerUnreachable
from flame.net.peer_client import PEER_PREFIX, PeerClient, host_header, parse_reply, refusal

TOKEN_HEADER = "Flame-Upload-Token"
CONNECT_TIMEOUT_S = 5.0


class TransferStatus(Wire):
    """What the receiver holds of a transfer (PROTOCOL.md §11.3)."""

    transfer_id: str = Field(max_length=200)
    state: str = Field(max_length=32)
    received_bytes: int = Field(ge=0)
    size: int = Field(ge=0)


def files_url(address: str, transfer_id: str) -> str:
    return f"{address}{PEER_PREFIX}/files/{transfer_id}"


async def transfer_status(
    client: PeerClient, address: str, peer: str, transfer_id: str, token: str
) -> TransferStatus:
    _, payload, _ = await client.request(
        "GET", files_url(address, transfer_id), audience=peer, headers={TOKEN_HEADER: token}
    )
    return parse_reply(TransferStatus, payload)


async def send_chunks(
    client: PeerClient,
    address: str,
    peer: str,
    transfer_id: str,
    token: str,
    start: int,
    length: int,
    body: AsyncIterable[bytes],
) -> TransferStatus:
    """PUT sealed chunks start.. as one streamed body of exactly `length` bytes.

    No total timeout: a large file takes as long as it takes. The receiver cuts off a sender that
    stalls, and the wait for the answer after the last byte is bounded by the client's timeout.
    """
    if client.identity is None:
        raise PeerUnreachable("The daemon is locked: it cannot sign requests.")
    target = URL(f"{files_url(address, transfer_id)}/chunks?start={start}")
    host = host_header(target)
    signed = sign_request(
        client.identity,
        client.username,
        peer,
        "PUT",
        target.raw_path_qs,
        host,
        b"",
        int(client.now()),
        unsigned_body=True,
    )
    headers = {
        "Host": host,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(length),
        TOKEN_HEADER: token,
        **signed,
    }
    request_timeout = client.session.timeout.total
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=request_timeout
    )
    try:
        async with client.session.put(
            target, data=body, headers=headers, timeout=timeout
        ) as response:
            payload = await response.read()
            status, response_headers = response.status, dict(response.headers)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise PeerUnreachable(
            f"Cannot send to {target.host}:{target.port}: {type(exc).__name__}"
        ) from exc
    if status >= 400:
        raise refusal(status, payload, response_headers)
    return parse_reply(TransferStatus, payload)


__all__ = ["PeerRefused", "TransferStatus", "send_chunks", "transfer_status"]

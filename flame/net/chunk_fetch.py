"""Fetching a group file's chunks from a member who holds them (PROTOCOL.md §19.7): a signed GET
whose answer is streamed, not read whole, so the caller verifies and writes chunk after chunk
(services/files/chunks.py) with memory at about a chunk."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from flame.core.transport import Endpoint
from flame.errors import PeerRefused, PeerUnreachable
from flame.net.failures import unreachable
from flame.net.peer_client import CONNECT_TIMEOUT_S, PEER_PREFIX, TOKEN_HEADER, PeerClient
from flame.net.replies import host_header, refusal, target_url
from flame.net.tls import TLS_SERVER_NAME, mismatch_message, whose


def group_file_path(author: str, transfer_id: str, start: int) -> str:
    return f"{PEER_PREFIX}/group-files/{author}/{transfer_id}/chunks?start={start}"


@contextlib.asynccontextmanager
async def open_chunks(
    client: PeerClient, holder: Endpoint, author: str, transfer_id: str, token: str, start: int
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The holder's answer of sealed chunks from `start` (200, its body not read yet). A refusal
    is PeerRefused with the holder's code; no answer is PeerUnreachable."""
    if not client.may_call(holder.owner):
        raise PeerUnreachable(f"Not calling {holder.owner}: this user appears offline.")
    path_qs = group_file_path(author, transfer_id, start)
    transport = client.pins.ssl_for(holder)
    target = target_url(holder.url + path_qs)
    host = host_header(target)
    headers = {
        "Host": host,
        TOKEN_HEADER: token,
        **(await client.signed_headers(holder.owner, "GET", target, host, b"", streamed=False)),
    }
    options: dict[str, Any] = {}
    if transport:
        options["server_hostname"] = TLS_SERVER_NAME
    # No total timeout: the body is as long as the file; a holder that stalls is cut off by
    # the reads' timeout (services/files/chunks.py) and by this one.
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=client.session.timeout.total
    )
    try:
        response = await client.session.request(
            "GET",
            target,
            headers=headers,
            ssl=transport,
            allow_redirects=False,
            timeout=timeout,
            **options,
        )
    except aiohttp.ServerFingerprintMismatch as exc:
        raise PeerUnreachable(mismatch_message(holder)) from exc
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise unreachable(whose(holder), holder.url, exc) from exc
    try:
        if response.status != 200:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise unreachable(whose(holder), holder.url, exc) from exc
            if response.status < 400:
                raise PeerRefused(
                    f"{whose(holder)} answered HTTP {response.status}.",
                    status=response.status,
                    code="peer_refused",
                )
            raise refusal(response.status, payload, response.headers)
        yield response
    finally:
        response.release()

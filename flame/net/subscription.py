"""The directory's signed subscription, from the daemon's side (PROTOCOL.md §5.5): one WebSocket
at the first of the directory's addresses that takes it, signed like every other call, its
certificate pinned. Frames are parsed by the caller."""

from __future__ import annotations

from typing import Any

import aiohttp

from flame.core.changes import DirectoryChanges
from flame.core.signing import DIRECTORY_AUDIENCE
from flame.core.transport import Endpoint
from flame.errors import PeerRefused, PeerUnreachable
from flame.net.peer_client import CONNECT_TIMEOUT_S, DIRECTORY_PREFIX, PeerClient
from flame.net.replies import host_header, parse_reply, target_url
from flame.net.tls import TLS_SERVER_NAME, mismatch_message

HEARTBEAT_S = 15.0  # a directory that died silently is noticed within two
FRAME_MAX = 16 * 1024 * 1024  # one frame may carry many users' entries


async def subscribe(
    client: PeerClient, directory: Endpoint
) -> aiohttp.ClientWebSocketResponse[bool]:
    """The open subscription; the caller closes it.

    Raises:
        PeerUnreachable: no address answered. PeerRefused: the directory said no (its status).
    """
    if directory.alternates:
        return await client.failover(directory, lambda one: subscribe(client, one))
    transport = client.pins.ssl_for(directory)
    path = DIRECTORY_PREFIX + "/subscribe"
    target = target_url(directory.url + path)
    host = host_header(target)
    signed = await client.signed_headers(
        DIRECTORY_AUDIENCE, "GET", target, host, b"", streamed=False
    )
    options: dict[str, Any] = {"server_hostname": TLS_SERVER_NAME} if transport else {}
    try:
        ws: aiohttp.ClientWebSocketResponse[bool] = await client.session.ws_connect(
            target,
            headers={"Host": host, **signed},
            ssl=transport,
            heartbeat=HEARTBEAT_S,
            timeout=aiohttp.ClientWSTimeout(ws_close=CONNECT_TIMEOUT_S),
            max_msg_size=FRAME_MAX,
            **options,
        )
        return ws
    except aiohttp.WSServerHandshakeError as exc:
        raise PeerRefused(
            f"The directory refused the subscription (HTTP {exc.status}).", status=exc.status
        ) from None
    except aiohttp.ServerFingerprintMismatch as exc:
        raise PeerUnreachable(mismatch_message(directory)) from exc
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise PeerUnreachable(f"Cannot subscribe at {directory.url}: {type(exc).__name__}") from exc


def parse_frame(text: str) -> DirectoryChanges:
    """One frame. Raises PeerRefused (`bad_reply`) when it does not parse."""
    return parse_reply(DirectoryChanges, text.encode())

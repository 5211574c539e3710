"""The calls a daemon makes to the directory's key log (PROTOCOL.md §18.3), and the directory's
hello, which names the log's key (§18.1); through the one client, so pinned and mapped as every
call is. What comes back is parsed, never trusted: the service checks it (§18.4)."""

from __future__ import annotations

from flame.core.encoding import b64d
from flame.core.keylog import HASH_BYTES, KeyLogEntries, KeyLogHead, KeyLogProof
from flame.core.openapi import DirectoryHello
from flame.core.transport import Endpoint
from flame.errors import BadRequest, PeerRefused
from flame.net.peer_client import DIRECTORY_PREFIX, PeerClient
from flame.net.replies import parse_reply

PREFIX = DIRECTORY_PREFIX + "/keylog"


async def directory_hello(client: PeerClient, directory: Endpoint) -> DirectoryHello:
    _, payload, _ = await client.request(
        "GET", directory, DIRECTORY_PREFIX + "/hello", signed=False
    )
    return parse_reply(DirectoryHello, payload)


async def head(client: PeerClient, directory: Endpoint) -> KeyLogHead:
    _, payload, _ = await client.request("GET", directory, PREFIX + "/head")
    return parse_reply(KeyLogHead, payload)


async def entries(client: PeerClient, directory: Endpoint, start: int) -> KeyLogEntries:
    _, payload, _ = await client.request("GET", directory, f"{PREFIX}/entries/{start}")
    return parse_reply(KeyLogEntries, payload)


async def consistency(
    client: PeerClient, directory: Endpoint, first: int, second: int
) -> list[bytes]:
    _, payload, _ = await client.request("GET", directory, f"{PREFIX}/consistency/{first}/{second}")
    proof = parse_reply(KeyLogProof, payload)
    try:
        return [b64d(h, length=HASH_BYTES, what="a proof's hash") for h in proof.proof]
    except BadRequest as exc:
        raise PeerRefused(
            "The directory's proof is malformed.", status=502, code="bad_reply"
        ) from exc

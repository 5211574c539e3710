"""Helpers for the profile, status, search, blocking and rate-limit tests: raw signed requests to a
daemon's remote API, as another daemon (or an attacker holding a real key) would send them."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from flame.core.envelope import new_message_id, seal
from flame.core.models import SEQUENCED_KINDS, Envelope, Inner, TextBody, Wire
from flame.core.signing import sign_request
from flame.daemon import Daemon
from tests.cluster import (
    Cluster,
    UiClient,
    account_of,
    identity_of,
    peer_tls,
    peer_url,
    services_of,
)


def sealed(
    author: Daemon,
    to: Daemon,
    body: Wire | None = None,
    *,
    kind: str = "text",
    text: str = "hello",
    seq: int | None = None,
) -> Envelope:
    """An envelope written and sealed by `author` for `to` (control kinds carry seq 0)."""
    inner = Inner(
        from_=services_of(author).ctx.me,
        to=services_of(to).ctx.me,
        id=new_message_id(),
        seq=seq if seq is not None else (1 if kind in SEQUENCED_KINDS else 0),
        ts=int(time.time() * 1000),
        kind=kind,
        body=body if body is not None else TextBody(text=text),
    )
    recipient = services_of(to).ctx
    return seal(
        identity_of(author).exchange, recipient.me, recipient.keys.account.x25519_key, inner
    )


async def signed_request(
    sender: Daemon,
    target: Daemon,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One request signed by `sender`'s identity to `target`'s peer port. Returns status, JSON
    answer and headers."""
    host = f"127.0.0.1:{target.peer_port}"
    headers = sign_request(
        identity_of(sender),
        services_of(sender).ctx.me,
        services_of(target).ctx.me,
        method,
        path,
        host,
        body,
        int(time.time()),
    )
    headers["Content-Type"] = "application/json"
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.request(
            method,
            peer_url(target) + path,
            data=body or None,
            headers=headers,
            ssl=peer_tls(target),
        ) as response:
            return response.status, await response.json(), dict(response.headers)
    finally:
        if own:
            await session.close()


async def hello_from(sender: Daemon | None, target: Daemon) -> dict[str, Any]:
    """`target`'s hello (PROTOCOL.md §7.1) as `sender` gets it, signing it; None: unsigned, as
    anyone who connects to the port. `target` may be locked."""
    path = "/api/v1/hello"
    headers = {}
    if sender is not None:
        me, them = services_of(sender).ctx.me, account_of(target).username
        host = f"127.0.0.1:{target.peer_port}"
        headers = sign_request(
            identity_of(sender), me, them, "GET", path, host, b"", int(time.time())
        )
    async with (
        aiohttp.ClientSession() as session,
        session.get(peer_url(target) + path, headers=headers, ssl=peer_tls(target)) as response,
    ):
        assert response.status == 200
        answer = await response.json()
        assert isinstance(answer, dict)
        return answer


async def post_envelopes(
    sender: Daemon,
    target: Daemon,
    envelopes: list[Envelope],
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = json.dumps({"envelopes": [e.model_dump() for e in envelopes]}).encode()
    return await signed_request(sender, target, "POST", "/api/v1/envelopes", body, session=session)


async def online_for(cluster: Cluster, viewer: str, *others: str) -> None:
    """Wait until `viewer`'s daemon has `others` as contacts, online (a push reaches only the
    contacts a daemon knows)."""
    ui = UiClient(cluster.daemons[viewer])
    try:
        await ui.login()
        feed = await ui.websocket()
        for other in others:
            await ui.wait_status(feed, other, "online")
        await feed.close()
    finally:
        await ui.close()

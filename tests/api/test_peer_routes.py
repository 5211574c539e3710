"""The remote API handler by handler (PROTOCOL.md §4, §7): signed requests from a pinned contact,
zoe, to alice's peer app alone (no cluster, no directory)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import aiohttp
import yarl

from flame.api.ui.session import TOKEN_HEADER
from flame.core.crypto import Identity
from flame.core.envelope import new_message_id, seal
from flame.core.models import Envelope, Inner, TextBody
from flame.core.signing import sign_request
from flame.store import messages as message_store
from tests.api.conftest import ApiNode
from tests.cluster import PASSWORD


def envelope(
    node: ApiNode, text: str, *, author: str = "zoe", to: str = "alice", seq: int = 1
) -> Envelope:
    """Sealed by zoe's key for alice (or addressed elsewhere), claiming `author`."""
    inner = Inner(
        from_=author,
        to=to,
        id=new_message_id(),
        seq=seq,
        ts=int(time.time() * 1000),
        kind="text",
        body=TextBody(text=text),
    )
    return seal(node.zoe.exchange, to, node.holder.account.x25519_key, inner)


class Zoe:
    """zoe's signed raw requests to alice's peer port."""

    def __init__(self, node: ApiNode, identity: Identity | None = None) -> None:
        self.node = node
        self.identity = identity or node.zoe
        self.last: tuple[dict[str, str], bytes] | None = None

    def sign(self, body: bytes, *, audience: str = "alice") -> dict[str, str]:
        host = self.node.peer_url.removeprefix("http://")
        signed = sign_request(
            self.identity,
            "zoe",
            audience,
            "POST",
            "/api/v1/envelopes",
            host,
            body,
            int(time.time()),
        )
        return {**signed, "Content-Type": "application/json"}

    async def post_raw(
        self, body: bytes, headers: dict[str, str], path: str = "/api/v1/envelopes"
    ) -> tuple[int, dict[str, Any]]:
        self.last = (headers, body)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                yarl.URL(self.node.peer_url + path, encoded=True),
                data=io.BytesIO(body),
                headers=headers,
            ) as response:
                return response.status, await response.json()

    async def post(
        self, envelopes: list[Envelope] | None = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        body = raw
        if body is None:
            body = json.dumps({"envelopes": [e.model_dump() for e in envelopes or []]}).encode()
        return await self.post_raw(body, self.sign(body))


async def stored(node: ApiNode) -> int:
    return await message_store.count_messages(node.services.ctx.db)


async def unlocked(node: ApiNode) -> ApiNode:
    """Logged in through the UI (which unlocks the daemon); node.ui then sends the page token."""
    async with node.ui.post(
        "/ui/api/login", json={"password": PASSWORD}, headers={"Origin": node.ui_url}
    ) as response:
        assert response.status == 200
        node.ui.session.headers[TOKEN_HEADER] = (await response.json())["token"]
    return node


async def test_a_locked_daemon_answers_503_with_retry_after(node: ApiNode) -> None:
    zoe = Zoe(node)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            node.peer_url + "/api/v1/envelopes",
            data=(body := json.dumps({"envelopes": [envelope(node, "early").model_dump()]})),
            headers=zoe.sign(body.encode()),
        ) as response:
            assert response.status == 503
            assert (await response.json())["error"] == "locked"
            assert response.headers["Retry-After"] == "30"
        async with session.get(node.peer_url + "/api/v1/hello") as response:
            assert (await response.json())["locked"] is True
    assert await stored(await unlocked(node)) == 0


async def test_a_replayed_signed_request_is_refused(node: ApiNode) -> None:
    zoe = Zoe(await unlocked(node))
    status, _ = await zoe.post([envelope(node, "original")])
    assert status == 200
    assert zoe.last is not None
    status, reply = await zoe.post_raw(zoe.last[1], zoe.last[0])
    assert (status, reply["error"]) == (401, "replayed")
    assert await stored(node) == 1


async def test_tampered_malformed_and_misaddressed_envelopes_are_refused(node: ApiNode) -> None:
    zoe = Zoe(await unlocked(node))
    good = envelope(node, "secret")
    ct = bytearray(good.ct.encode())
    ct[10] = ord("A") if ct[10] != ord("A") else ord("B")
    tampered = good.model_copy(update={"ct": ct.decode()})
    status, reply = await zoe.post([tampered])
    assert (status, reply["error"]) == (400, "rejected")
    assert reply["results"][0]["status"] == "rejected"

    status, reply = await zoe.post([envelope(node, "for carol", to="carol")])
    assert (status, reply["error"]) == (400, "wrong_recipient")

    for raw in (
        b"not json",
        b"[]",
        b'{"envelopes": []}',
        b'{"envelopes": [{"v": 1}]}',
        json.dumps({"envelopes": [good.model_dump() | {"eph": "!!"}]}).encode(),
        json.dumps({"envelopes": [good.model_dump() | {"extra": 1}]}).encode(),
    ):
        status, reply = await zoe.post(raw=raw)
        assert 400 <= status < 500 and reply["error"] and reply["message"], raw
    assert await stored(node) == 0

    # One bad envelope does not sink the good ones of its batch.
    status, reply = await zoe.post([tampered, good])
    assert status == 400
    assert [r["status"] for r in reply["results"]] == ["rejected", "stored"]
    assert await stored(node) == 1
    status, _ = await zoe.post([envelope(node, "still working", seq=2)])
    assert status == 200


async def test_an_envelope_not_sealed_with_the_authors_pinned_key_is_refused(
    node: ApiNode,
) -> None:
    # zoe seals with her own key but writes "from": "yan" inside.
    status, reply = await Zoe(await unlocked(node)).post([envelope(node, "honest", author="yan")])
    assert (status, reply["error"]) == (400, "sender_key_mismatch")
    assert await stored(node) == 0


async def test_unsigned_badly_signed_and_oversized_requests(node: ApiNode) -> None:
    zoe = Zoe(await unlocked(node))
    body = json.dumps({"envelopes": [envelope(node, "x").model_dump()]}).encode()
    status, reply = await zoe.post_raw(body, {"Content-Type": "application/json"})
    assert (status, reply["error"]) == (401, "unsigned")
    status, reply = await zoe.post_raw(body + b" ", zoe.sign(body))
    assert (status, reply["error"]) == (401, "bad_signature")
    status, reply = await zoe.post_raw(body, zoe.sign(body, audience="carol"))
    assert (status, reply["error"]) == (401, "wrong_audience")
    status, reply = await zoe.post_raw(body, {**zoe.sign(body), "Flame-User": "nobody"})
    assert (status, reply["error"]) == (401, "unknown_user")
    status, reply = await Zoe(node, Identity.generate()).post([envelope(node, "forged key")])
    assert (status, reply["error"]) == (401, "bad_signature")  # not zoe's pinned key
    huge = b"x" * (node.services.ctx.settings.daemon.max_body_bytes + 1)
    status, reply = await zoe.post_raw(huge, zoe.sign(huge))
    assert (status, reply["error"]) == (413, "too_large")
    assert await stored(node) == 0
    async with aiohttp.ClientSession() as session:
        async with session.get(node.peer_url + "/api/v1/hello") as response:
            assert await response.json() == {"locked": False}  # names no one (tests/api/test_hello)
        async with session.get(node.peer_url + "/ui/api/me") as response:
            assert response.status == 404  # UI routes never answer on the peer port


async def test_a_non_ascii_timestamp_is_a_401_not_a_500(node: ApiNode) -> None:
    zoe = Zoe(await unlocked(node))
    body = b'{"envelopes": []}'
    for stamp in ("\u00b2", "\u0663\u0664", "12e3", "-5", ""):
        headers = {**zoe.sign(body), "Flame-Timestamp": stamp}
        status, reply = await zoe.post_raw(body, headers)
        assert (status, reply["error"]) == (401, "bad_signature"), stamp

"""Version 2 requests between peers (PROTOCOL.md §14.8): a MAC under the pair's static-static key,
with the audience, time window and replay protection of §4.3; and, the point of it, the
recipient can forge a valid-looking request "from" the sender with its own keys. Also the
`min_version = 2` refusals of §14.2."""

from __future__ import annotations

import json
import time

from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.signing import MAX_SKEW_S, SignedRequest, mac_request, request_string
from tests.api.conftest import ApiNode
from tests.api.test_hello import hello, mac
from tests.api.test_peer_routes import Zoe, envelope, stored, unlocked
from tests.e2e.test_versions import refusals

PATH = "/api/v1/envelopes"


def mac_headers(
    node: ApiNode, key: bytes, body: bytes, *, user: str = "zoe", skew_s: int = 0
) -> dict[str, str]:
    host = node.peer_url.removeprefix("http://")
    now = int(time.time()) + skew_s
    headers = mac_request(key, user, "alice", "POST", PATH, host, body, now)
    return {**headers, "Content-Type": "application/json"}


def zoe_pair_key(node: ApiNode, zoe: Identity) -> bytes:
    """What zoe computes: her X25519 private key and alice's public key."""
    return ratchet.pair_key(zoe.exchange, "zoe", node.services.ctx.keys.account.x25519_key, "alice")


def batch(node: ApiNode, text: str) -> bytes:
    return json.dumps({"envelopes": [envelope(node, text).model_dump()]}).encode()


async def test_a_mac_request_is_accepted_and_replay_refused(node: ApiNode) -> None:
    zoe = Zoe(await unlocked(node))
    body = batch(node, "deniable hello")
    headers = mac_headers(node, zoe_pair_key(node, node.zoe), body)
    assert "Flame-Signature" not in headers and len(headers["Flame-Mac"]) == 43
    status, reply = await zoe.post_raw(body, headers)
    assert status == 200 and reply["results"][0]["status"] == "stored"
    status, reply = await zoe.post_raw(body, headers)
    assert (status, reply["error"]) == (401, "replayed")
    status, reply = await zoe.post_raw(
        body + b" ", mac_headers(node, zoe_pair_key(node, node.zoe), body)
    )
    assert (status, reply["error"]) == (401, "bad_signature")  # the MAC covers the body
    other = mac_headers(node, zoe_pair_key(node, node.zoe), body)
    status, reply = await zoe.post_raw(body, {**other, "Flame-To": "carol"})
    assert (status, reply["error"]) == (401, "wrong_audience")
    assert await stored(node) == 1


async def test_a_mac_request_outside_the_300_s_window_is_refused(node: ApiNode) -> None:
    """The MAC keeps §4.3's time window: ±300 s around the receiver's clock."""
    zoe = Zoe(await unlocked(node))
    key = zoe_pair_key(node, node.zoe)
    for skew_s in (-MAX_SKEW_S - 30, MAX_SKEW_S + 30):
        body = batch(node, f"skewed {skew_s}")
        status, reply = await zoe.post_raw(body, mac_headers(node, key, body, skew_s=skew_s))
        assert (status, reply["error"]) == (401, "stale_request"), skew_s
        assert "clock" in reply["message"]
    assert await stored(node) == 0
    # Inside the window ahead (behind it, this just-started daemon refuses what predates its
    # start, §4.3).
    body = batch(node, "ahead, within the window")
    status, reply = await zoe.post_raw(body, mac_headers(node, key, body, skew_s=MAX_SKEW_S - 30))
    assert status == 200, reply
    assert await stored(node) == 1


async def test_someone_else_cannot_make_zoes_mac(node: ApiNode) -> None:
    zoe = Zoe(await unlocked(node))
    body = batch(node, "from an impostor")
    status, reply = await zoe.post_raw(body, mac_headers(node, zoe_pair_key(node, node.yan), body))
    assert (status, reply["error"]) == (401, "bad_signature")
    assert await stored(node) == 0


async def test_the_recipient_can_forge_a_request_from_the_sender_with_its_own_keys(
    node: ApiNode,
) -> None:
    """Deniability: alice's own X25519 private key and zoe's public key make exactly the MAC zoe
    would make, so a kept request proves nothing about zoe to anyone else."""
    zoe = Zoe(await unlocked(node))
    alice = node.services.ctx.keys.identity()
    forged_key = ratchet.pair_key(alice.exchange, "alice", node.zoe.x25519_key, "zoe")
    assert forged_key == zoe_pair_key(node, node.zoe)
    body = batch(node, "alice wrote this herself")
    headers = mac_headers(node, forged_key, body)
    host = node.peer_url.removeprefix("http://")
    parsed = SignedRequest.from_headers(headers)
    parsed.check(
        zoe_pair_key(node, node.zoe),  # checks out with the key zoe holds too
        method="POST",
        path_qs=PATH,
        host=host,
        expected_audience="alice",
        body=body,
        now=time.time(),
        not_before=0,
    )
    assert request_string("POST", PATH, host, "zoe", "alice", parsed.timestamp, parsed.nonce, body)
    status, reply = await zoe.post_raw(body, headers)
    assert status == 200 and reply["results"][0]["status"] == "stored"


async def test_min_version_2_refuses_version_1_signatures_and_envelopes(node: ApiNode) -> None:
    zoe = Zoe(await unlocked(node))
    node.services.ctx.settings.security.min_version = 2
    status, reply = await zoe.post([envelope(node, "signed with Ed25519")])
    _, refused_envelope, refused_request = refusals()  # PROTOCOL.md §14.2's words exactly
    assert (status, reply["error"], reply["message"]) == (401, "old_version", refused_request)
    body = batch(node, "a version 1 envelope")
    status, reply = await zoe.post_raw(body, mac_headers(node, zoe_pair_key(node, node.zoe), body))
    assert (status, reply["error"]) == (400, "old_version")
    assert reply["message"] == refused_envelope
    assert await stored(node) == 0
    assert (await hello(node, mac(node, node.zoe)))["versions"] == [2]

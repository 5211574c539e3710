"""Hello (PROTOCOL.md §7.1) names its user only to a member whose signed or MAC'd request
verified; anyone else, however they ask, learns whether the daemon is locked and nothing more:
no username, no key, no versions, and no 401 that would tell a good signature from a bad one."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.signing import mac_request, sign_request
from tests.api.conftest import ApiNode
from tests.api.test_peer_routes import unlocked

PATH = "/api/v1/hello"


def signed(node: ApiNode, signer: Identity, user: str = "zoe", **change: str) -> dict[str, str]:
    host = node.peer_url.removeprefix("http://")
    headers = sign_request(signer, user, "alice", "GET", PATH, host, b"", int(time.time()))
    return {**headers, **change}


def mac(node: ApiNode, signer: Identity, user: str = "zoe") -> dict[str, str]:
    host = node.peer_url.removeprefix("http://")
    key = ratchet.pair_key(signer.exchange, user, node.holder.account.x25519_key, "alice")
    return mac_request(key, user, "alice", "GET", PATH, host, b"", int(time.time()))


async def hello(node: ApiNode, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(node.peer_url + PATH, headers=headers or {}) as response:
            assert response.status == 200
            answer = await response.json()
            assert isinstance(answer, dict)
            return answer


def full(node: ApiNode, versions: list[int]) -> dict[str, Any]:
    return {
        "username": "alice",
        "identity_key": b64e(node.holder.account.identity_key),
        "versions": versions,
        "features": [
            *("envelopes", "receipts", "relay", "profiles", "files", "files-stream"),
            *("replies", "edits", "reactions", "typing", "groups"),
        ],
        "locked": False,
    }


async def test_only_a_pinned_member_who_signed_learns_who_answers(node: ApiNode) -> None:
    await unlocked(node)
    assert await hello(node, signed(node, node.zoe)) == full(node, [1, 2])
    assert await hello(node, mac(node, node.zoe)) == full(node, [1, 2])  # deniable, §14.8

    public = {"locked": False}
    stranger = Identity.generate()
    replay = signed(node, node.zoe)
    assert await hello(node, replay) == full(node, [1, 2])
    for headers in (
        None,  # unsigned
        {"Flame-User": "zoe", "Flame-To": "alice"},  # naming zoe, unsigned
        signed(node, node.yan, "zoe"),  # zoe's name, someone else's key
        mac(node, node.yan, "zoe"),  # the same with a MAC
        signed(node, stranger, "nobody"),  # a name this daemon never pinned
        signed(node, node.zoe, **{"Flame-To": "bob"}),  # meant for someone else
        signed(node, node.zoe, **{"Flame-Timestamp": str(int(time.time()) - 3600)}),
        replay,  # seen already
    ):
        assert await hello(node, headers) == public, headers
    # The stranger cost no question to the directory (none was budgeted): only pinned keys count.
    assert node.services.contacts.stranger_lookups.buckets == {}

    await node.services.blocks.block("zoe")
    assert await hello(node, signed(node, node.zoe)) == public  # as to anyone else
    await node.services.blocks.unblock("zoe")
    assert await hello(node, signed(node, node.zoe)) == full(node, [1, 2])


async def test_locked_or_appearing_offline_it_names_no_one_even_to_a_member(
    node: ApiNode,
) -> None:
    locked = {"locked": True}
    assert await hello(node) == locked
    assert await hello(node, signed(node, node.zoe)) == locked  # it cannot check: no keys
    await unlocked(node)
    await node.services.status.choose("offline")
    assert await hello(node, signed(node, node.zoe)) == locked  # exactly as a locked one
    assert await hello(node, mac(node, node.zoe)) == locked
    await node.services.status.choose("busy")
    assert await hello(node, signed(node, node.zoe)) == full(node, [1, 2])


async def test_a_version_2_only_daemon_answers_a_mac_and_not_a_signature(node: ApiNode) -> None:
    await unlocked(node)
    node.services.ctx.settings.security.min_version = 2
    assert await hello(node, mac(node, node.zoe)) == full(node, [2])
    assert await hello(node, signed(node, node.zoe)) == {"locked": False}

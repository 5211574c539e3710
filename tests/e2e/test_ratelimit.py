"""Rate limits: token buckets per remote address and per authenticated sender on the remote API
and the directory; a flood gets 429 with Retry-After and a JSON reason while everyone else is
served; the sending daemon waits as told; the user's own UI is never limited."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from flame.core.crypto import Identity
from flame.core.ratelimit import TokenBuckets
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.services.account import enroll_request
from tests.cluster import Cluster, services_of, verifier_of
from tests.social import online_for, post_envelopes, sealed

OTHER_ADDRESS = "127.0.0.2"  # loopback too: a second "machine" for the flood


async def flood(url: str, count: int, headers: dict[str, str] | None = None) -> list[Any]:
    """`count` requests from OTHER_ADDRESS, 16 at a time; (status, JSON, Retry-After) each."""
    connector = aiohttp.TCPConnector(local_addr=(OTHER_ADDRESS, 0), limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> tuple[int, Any, str | None]:
            async with session.get(url, headers=headers) as response:
                return response.status, await response.json(), response.headers.get("Retry-After")

        return list(await asyncio.gather(*(one() for _ in range(count))))


def assert_limited(answers: list[Any], allowed: int) -> None:
    statuses = [status for status, _, _ in answers]
    assert statuses.count(200) == allowed, statuses
    refused = [(body, retry) for status, body, retry in answers if status == 429]
    assert len(refused) == len(answers) - allowed
    for body, retry in refused:
        assert body["error"] == "rate_limited" and "try again" in body["message"]
        assert retry is not None and int(retry) >= 1


async def test_a_flood_from_one_address_gets_429_while_a_normal_peer_is_served(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    await cluster.add_user("alice")
    bob = await cluster.add_user(
        "bob", limits__peer_rate_per_address=0.5, limits__peer_burst_per_address=50
    )
    await online_for(cluster, "alice", "bob")
    answers = await flood(f"http://127.0.0.1:{bob.peer_port}/api/v1/hello", 120)
    assert_limited(answers, allowed=50)

    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    bob_feed = await bob_ui.websocket()
    await alice_ui.send("bob", "from another address, still heard")
    event = await bob_feed.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "from another address, still heard"


async def test_a_flooding_sender_gets_429_while_another_sender_is_served(trio: Cluster) -> None:
    alice, bob, carol = trio.daemons["alice"], trio.daemons["bob"], trio.daemons["carol"]
    await online_for(trio, "alice", "bob")
    assert carol.supervisor is not None
    await carol.supervisor.stop()  # only the flood below speaks for carol (no relay collects)
    # For this test: tight, and fresh (carol's loops may have asked bob something before).
    verifier = verifier_of(bob)
    verifier.per_caller = TokenBuckets(rate_per_s=0.1, burst=5)

    async with aiohttp.ClientSession() as session:
        answers = [
            await post_envelopes(carol, bob, [sealed(carol, bob, text=f"{n}")], session=session)
            for n in range(12)
        ]
    statuses = [status for status, _, _ in answers]
    assert statuses == [200] * 5 + [429] * 7
    assert answers[-1][1]["error"] == "rate_limited" and "carol" in answers[-1][1]["message"]
    assert int(answers[-1][2]["Retry-After"]) >= 1

    bob_ui, alice_ui = await trio.ui("bob"), await trio.ui("alice")
    bob_feed = await bob_ui.websocket()
    await alice_ui.send("bob", "alice is not carol")
    event = await bob_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["author"] == "alice"
    )
    assert event["message"]["text"] == "alice is not carol"
    assert alice


async def test_the_sender_waits_as_long_as_it_is_told(trio: Cluster) -> None:
    bob = trio.daemons["bob"]
    verifier = verifier_of(bob)
    await online_for(trio, "alice", "bob")
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    alice_feed, bob_feed = await alice_ui.websocket(), await bob_ui.websocket()
    verifier.per_caller = TokenBuckets(rate_per_s=0.5, burst=1)  # one now, the next in 2 s

    first = await alice_ui.send("bob", "first")
    await alice_feed.wait_for(lambda e: e["type"] == "message_state" and e["id"] == first["id"])
    asked_at = time.monotonic()
    second = await alice_ui.send("bob", "second")
    await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["text"] == "second")
    waited = time.monotonic() - asked_at
    # Without Retry-After the outbox would retry within 0.05-0.5 s (the test's backoff) and be
    # refused again; it waited the two seconds it was told and got through at the first retry.
    assert waited >= 1.8, waited
    assert verifier.refused == 1
    row = await services_of(bob).ctx.db.fetchone(
        "SELECT count(*) FROM messages WHERE author='alice'"
    )
    assert row is not None and row[0] == 2
    assert second["state"] == "sending"


async def test_the_directory_limits_addresses_and_users(cluster: Cluster) -> None:
    await cluster.start_directory(
        burst_per_address=40, rate_per_address=0.5, burst_per_user=5, rate_per_user=0.1
    )
    url = cluster.directory_url
    answers = await flood(f"{url}/dir/v1/hello", 60)
    assert_limited(answers, allowed=40)

    # Per user, once the signature verified: mallory's flood does not spend trent's allowance.
    identities = {name: Identity.generate() for name in ("mallory", "trent")}
    async with aiohttp.ClientSession() as session:
        for name, identity in identities.items():
            body = enroll_request(identity, name, None).model_dump()
            async with session.post(f"{url}/dir/v1/enroll", json=body) as response:
                assert response.status == 201

        async def users(name: str) -> int:
            host = url.removeprefix("http://")
            headers = sign_request(
                identities[name],
                name,
                DIRECTORY_AUDIENCE,
                "GET",
                "/dir/v1/users",
                host,
                b"",
                int(time.time()),
            )
            async with session.get(f"{url}/dir/v1/users", headers=headers) as response:
                return response.status

        assert [await users("mallory") for _ in range(8)] == [200] * 5 + [429] * 3
        assert await users("trent") == 200


async def test_the_users_own_ui_is_never_limited(cluster: Cluster) -> None:
    await cluster.start_directory()
    await cluster.add_user(
        "alice",
        limits__peer_rate_per_address=0.1,
        limits__peer_burst_per_address=1,
        limits__peer_rate_per_sender=0.1,
        limits__peer_burst_per_sender=1,
    )
    alice_ui = await cluster.ui("alice")

    async def get(path: str) -> int:
        async with alice_ui.session.get(path) as response:
            await response.read()
            return response.status

    paths = ["/ui/api/contacts", "/ui/api/search?q=budget", "/ui/api/me", "/ui/api/profile"]
    statuses = await asyncio.gather(*(get(paths[n % 4]) for n in range(400)))
    assert set(statuses) == {200}

"""The directory: enrollment and invite rules, signed requests, presence that comes and goes."""

from __future__ import annotations

import time

import aiohttp
import pytest

from flame.core.crypto import Identity
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.directory import store
from flame.errors import FlameError
from flame.services.account import enroll_request
from tests.cluster import PASSWORD, Cluster, identity_of, services_of


def enroll_body(
    name: str, invite: str | None, identity: Identity | None = None
) -> dict[str, object]:
    return enroll_request(identity or Identity.generate(), name, invite).model_dump()


async def post_enroll(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/dir/v1/enroll", json=body) as response:
            return response.status, await response.json()


async def new_invite(cluster: Cluster, name: str, rekey: bool = False) -> str:
    assert cluster.directory is not None and cluster.directory.db is not None
    return await store.create_invite(
        cluster.directory.db, name, rekey=rekey, now=int(time.time()), ttl_s=3600
    )


async def test_invite_is_one_time_and_bound_to_its_username(cluster: Cluster) -> None:
    await cluster.start_directory(registration="invite")
    url = cluster.directory_url
    status, body = await post_enroll(url, enroll_body("alice", None))
    assert (status, body["error"]) == (403, "invite_required")
    status, body = await post_enroll(url, enroll_body("alice", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"))
    assert (status, body["error"]) == (403, "bad_invite")

    code = await new_invite(cluster, "alice")
    status, body = await post_enroll(url, enroll_body("mallory", code))
    assert (status, body["error"]) == (403, "bad_invite")
    status, body = await post_enroll(url, enroll_body("alice", code.lower()))  # typed loosely
    assert status == 201 and body["username"] == "alice"
    status, body = await post_enroll(url, enroll_body("alice", code))
    assert (status, body["error"]) == (403, "invite_used")


async def test_username_taken_is_409_unless_a_rekey_invite(cluster: Cluster) -> None:
    await cluster.start_directory(registration="open")
    url = cluster.directory_url
    assert (await post_enroll(url, enroll_body("bob", None)))[0] == 201
    status, body = await post_enroll(url, enroll_body("bob", None))
    assert (status, body["error"]) == (409, "username_taken")
    assert "taken" in str(body["message"])
    rekey = await new_invite(cluster, "bob", rekey=True)
    assert (await post_enroll(url, enroll_body("bob", rekey)))[0] == 201


async def test_enrollment_needs_proof_of_the_keys(cluster: Cluster) -> None:
    await cluster.start_directory(registration="open")
    body = enroll_body("carol", None)
    body["x25519_sig"] = enroll_body("carol", None)["x25519_sig"]  # someone else's binding
    status, reply = await post_enroll(cluster.directory_url, body)
    assert (status, reply["error"]) == (400, "bad_binding")
    body = enroll_body("carol", None)
    body["proof"] = enroll_body("carol", None)["proof"]
    status, reply = await post_enroll(cluster.directory_url, body)
    assert (status, reply["error"]) == (400, "bad_proof")
    status, reply = await post_enroll(cluster.directory_url, {"username": "Bad Name!"})
    assert status == 400 and reply["error"] == "bad_request"


async def test_flame_init_reports_a_bad_invite_and_writes_nothing(cluster: Cluster) -> None:
    await cluster.start_directory(registration="invite")
    with pytest.raises(FlameError, match="not valid"):
        await cluster.enroll("alice", invite="NOPE-NOPE-NOPE-NOPE-NOPE-NOPE")
    code = await new_invite(cluster, "alice")
    await cluster.enroll("alice", invite=code)  # the same folder works once corrected
    node = await cluster.start_daemon("alice")
    assert services_of(node).ctx.me == "alice"


async def test_presence_appears_and_expires(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    feed = await alice.websocket()
    await alice.wait_status(feed, "bob", "online")
    await alice.wait_status(feed, "carol", "online")
    # A crashed daemon stops reporting; its presence expires after the TTL (2 s in tests) even
    # though it never logged off. Crash carol's tasks without a log-off.
    carol = trio.daemons["carol"]
    assert carol.supervisor is not None
    await carol.supervisor.stop()
    # (An "online" event may still be queued from before: wait_status can see the database first.)
    await feed.wait_for(
        lambda e: e["type"] == "presence" and e["username"] == "carol" and e["status"] == "offline"
    )
    # A clean stop logs off at once.
    await trio.stop_daemon("bob")
    await feed.wait_for(
        lambda e: e["type"] == "presence" and e["username"] == "bob" and e["status"] == "offline"
    )


async def test_directory_calls_must_be_signed_and_cannot_be_replayed(trio: Cluster) -> None:
    url = trio.directory_url
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/dir/v1/users") as response:
            assert response.status == 401
            assert (await response.json())["error"] == "unsigned"
        host = url.removeprefix("http://")
        headers = sign_request(
            identity_of(trio.daemons["alice"]),
            "alice",
            DIRECTORY_AUDIENCE,
            "GET",
            "/dir/v1/users",
            host,
            b"",
            int(time.time()),
        )
        async with session.get(url + "/dir/v1/users", headers=headers) as response:
            assert response.status == 200
            names = [u["user"]["username"] for u in (await response.json())["users"]]
            assert names == ["alice", "bob", "carol"]
            etag = response.headers["ETag"]
        async with session.get(url + "/dir/v1/users", headers=headers) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "replayed"
        fresh = sign_request(
            identity_of(trio.daemons["alice"]),
            "alice",
            DIRECTORY_AUDIENCE,
            "GET",
            "/dir/v1/users",
            host,
            b"",
            int(time.time()),
        )
        async with session.get(
            url + "/dir/v1/users", headers={**fresh, "If-None-Match": etag}
        ) as response:
            assert response.status in (200, 304)  # 304 unless presence changed in between
        forged = sign_request(
            identity_of(trio.daemons["bob"]),
            "alice",
            DIRECTORY_AUDIENCE,
            "GET",
            "/dir/v1/users",
            host,
            b"",
            int(time.time()),
        )
        async with session.get(url + "/dir/v1/users", headers=forged) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "bad_signature"
        for_bob = sign_request(
            identity_of(trio.daemons["alice"]),
            "alice",
            "bob",
            "GET",
            "/dir/v1/users",
            host,
            b"",
            int(time.time()),
        )
        async with session.get(url + "/dir/v1/users", headers=for_bob) as response:
            assert (await response.json())["error"] == "wrong_audience"
        old = sign_request(
            identity_of(trio.daemons["alice"]),
            "alice",
            DIRECTORY_AUDIENCE,
            "GET",
            "/dir/v1/users",
            host,
            b"",
            int(time.time()) - 3600,
        )
        async with session.get(url + "/dir/v1/users", headers=old) as response:
            assert (await response.json())["error"] == "stale_request"
    assert PASSWORD

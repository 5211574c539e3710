"""The directory: enrollment and invite rules, signed requests, presence that comes and goes."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import aiohttp
import pytest

from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.models import DirectoryEntry, PresenceRecord
from flame.core.signing import DIRECTORY_AUDIENCE, sign_record, sign_request
from flame.daemon import Daemon
from flame.errors import FlameError, PeerRefused
from flame.services.account import enroll_request
from tests.cluster import PASSWORD, Cluster, directory_tls, identity_of, services_of


def enroll_body(
    name: str, invite: str | None, identity: Identity | None = None
) -> dict[str, object]:
    return enroll_request(identity or Identity.generate(), name, invite).model_dump()


async def post_enroll(
    cluster: Cluster, body: dict[str, object], url: str | None = None
) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession(connector=pinned(directory_tls(cluster))) as session:
        target = (url or cluster.directory_url) + "/dir/v1/enroll"
        async with session.post(target, json=body) as response:
            return response.status, await response.json()


def pinned(pin: aiohttp.Fingerprint) -> aiohttp.TCPConnector:
    """A connector for one server, whose certificate it checks against `pin`."""
    return aiohttp.TCPConnector(ssl=pin)


async def new_invite(cluster: Cluster, name: str, rekey: bool = False) -> str:
    assert cluster.directory is not None and cluster.directory.store is not None
    return await cluster.directory.store.create_invite(
        name, rekey=rekey, now=int(time.time()), ttl_s=3600
    )


async def test_invite_is_one_time_and_bound_to_its_username(cluster: Cluster) -> None:
    await cluster.start_directory(registration="invite")
    status, body = await post_enroll(cluster, enroll_body("alice", None))
    assert (status, body["error"]) == (403, "invite_required")
    status, body = await post_enroll(cluster, enroll_body("alice", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"))
    assert (status, body["error"]) == (403, "bad_invite")

    code = await new_invite(cluster, "alice")
    status, body = await post_enroll(cluster, enroll_body("mallory", code))
    assert (status, body["error"]) == (403, "bad_invite")
    status, body = await post_enroll(cluster, enroll_body("alice", code.lower()))  # typed loosely
    assert status == 201 and body["username"] == "alice"
    status, body = await post_enroll(cluster, enroll_body("alice", code))
    assert (status, body["error"]) == (403, "invite_used")


async def test_username_taken_is_409_unless_a_rekey_invite(cluster: Cluster) -> None:
    await cluster.start_directory(registration="open")
    assert (await post_enroll(cluster, enroll_body("bob", None)))[0] == 201
    status, body = await post_enroll(cluster, enroll_body("bob", None))
    assert (status, body["error"]) == (409, "username_taken")
    assert "taken" in str(body["message"])
    rekey = await new_invite(cluster, "bob", rekey=True)
    assert (await post_enroll(cluster, enroll_body("bob", rekey)))[0] == 201


async def test_enrollment_needs_proof_of_the_keys(cluster: Cluster) -> None:
    await cluster.start_directory(registration="open")
    body = enroll_body("carol", None)
    body["x25519_sig"] = enroll_body("carol", None)["x25519_sig"]  # someone else's binding
    status, reply = await post_enroll(cluster, body)
    assert (status, reply["error"]) == (400, "bad_binding")
    body = enroll_body("carol", None)
    body["proof"] = enroll_body("carol", None)["proof"]
    status, reply = await post_enroll(cluster, body)
    assert (status, reply["error"]) == (400, "bad_proof")
    status, reply = await post_enroll(cluster, {"username": "Bad Name!"})
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
    async with aiohttp.ClientSession(connector=pinned(directory_tls(trio))) as session:
        async with session.get(url + "/dir/v1/users") as response:
            assert response.status == 401
            assert (await response.json())["error"] == "unsigned"
        host = url.removeprefix("https://")
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


TLS = hashlib.sha256(b"bob's certificate").digest()
# (address, tls, the reason given): what a hostile member could publish as its presence.
BAD_ADDRESSES = [
    ("http://127.0.0.1:99999", None, "plain http:// is off"),
    ("https://127.0.0.1:99999", b64e(TLS), "port '99999' is not a port number"),
    ("https://:8470", b64e(TLS), "it names no host"),
    ("https://bob.example:8470/api/v1", b64e(TLS), "without a path"),
    ("https://bob.example:8470?next=evil", b64e(TLS), "without a path or query"),
    ("https://user@bob.example", b64e(TLS), "without a path or query"),
    ("http://bob.example:8470", None, "plain http:// is off"),
    ("https://bob.example:8470", None, "needs its certificate's fingerprint"),
    ("https://bob.example:8470", "not-a-fingerprint", "fingerprint"),
]


def presence_of(node: Daemon, address: str, tls: str | None) -> PresenceRecord:
    """A presence record signed by `node`'s own key, with whatever address it likes."""
    fields: dict[str, Any] = {
        "username": services_of(node).ctx.me,
        "address": address,
        "tls": tls,
        "status": "online",
        "versions": [1],
        "ts": int(time.time()),
    }
    return PresenceRecord(**fields, sig=sign_record(identity_of(node), "presence", fields))


@pytest.mark.parametrize(("address", "tls", "reason"), BAD_ADDRESSES)
async def test_the_directory_refuses_a_presence_address_that_does_not_parse(
    trio: Cluster, address: str, tls: str | None, reason: str
) -> None:
    bob = services_of(trio.daemons["bob"])
    with pytest.raises(PeerRefused) as refused:
        await bob.client.report_presence(
            bob.contacts.directory, presence_of(trio.daemons["bob"], address, tls)
        )
    assert (refused.value.http_status, refused.value.code) == (400, "bad_address")
    assert refused.value.message.startswith("The presence address is refused: ")
    assert reason in refused.value.message


async def test_readers_skip_a_presence_address_that_does_not_parse(trio: Cluster) -> None:
    """As a bad signature is: a directory that served one anyway changes nothing of bob but his
    status, and his next good record counts again."""
    supervisor = trio.daemons["alice"].supervisor
    assert supervisor is not None
    await supervisor.stop()  # only this test applies entries: no sync of alice's in between
    alice = services_of(trio.daemons["alice"])
    entry = await alice.client.directory_user(alice.contacts.directory, "bob")
    assert entry.presence is not None
    await alice.contacts.apply_entries([entry])
    good = await alice.contacts.get("bob")
    assert good is not None and good.status == "online" and good.endpoint is not None
    for address, tls, _ in BAD_ADDRESSES:
        bad = DirectoryEntry(
            user=entry.user, presence=presence_of(trio.daemons["bob"], address, tls)
        )
        await alice.contacts.apply_entries([bad])
        contact = await alice.contacts.get("bob")
        assert contact is not None and contact.status == "offline", address
        assert (contact.address, contact.tls) == (good.address, good.tls), address
    await alice.contacts.apply_entries([entry])
    back = await alice.contacts.get("bob")
    assert back is not None and back.status == "online"

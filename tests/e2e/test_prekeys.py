"""Prekeys at a real directory (PROTOCOL.md §14.3): what an upload must be, the claim rules (each
one-time key handed out once, then the fallback key, and `no_prekeys` for someone who published
none), a daemon's refill when few are left, and a session started from the fallback key."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from yarl import URL

from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.prekeys import PrekeyRecord, PrekeyUpload, sign_prekey
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.devtools.fuzz_schema import unlimited_directory
from flame.services.account import enroll_request
from tests.cluster import Cluster, eventually, identity_of, services_of

Answer = tuple[int, dict[str, Any]]


class Member:
    """An enrolled user without a daemon: its identity and its own signed directory calls."""

    def __init__(self, cluster: Cluster, session: aiohttp.ClientSession, name: str) -> None:
        self.cluster, self.session, self.name = cluster, session, name
        self.identity = Identity.generate()
        self.account = ratchet.new_account()

    async def enroll(self) -> None:
        body = enroll_request(self.identity, self.name, None).model_dump()
        url = self.cluster.directory_url + "/dir/v1/enroll"
        async with self.session.post(url, json=body) as response:
            assert response.status == 201, await response.text()

    def upload(self, count: int) -> PrekeyUpload:
        one_time, fallback = ratchet.fresh_prekeys(self.account, self.identity, self.name, count)
        self.account.mark_keys_as_published()
        assert fallback is not None
        return PrekeyUpload(one_time=one_time, fallback=fallback)

    async def call(self, method: str, path: str, body: bytes = b"") -> Answer:
        target = URL(self.cluster.directory_url + path)
        host = f"{target.host}:{target.port}"
        headers = sign_request(
            self.identity, self.name, DIRECTORY_AUDIENCE, method, path, host, body, int(time.time())
        )
        headers |= {"Content-Type": "application/json"}
        async with self.session.request(
            method, target, data=body or None, headers=headers
        ) as answer:
            return answer.status, await answer.json()

    async def put(self, upload: PrekeyUpload | dict[str, Any]) -> Answer:
        body = upload.model_dump_json() if isinstance(upload, PrekeyUpload) else json.dumps(upload)
        return await self.call("PUT", "/dir/v1/prekeys", body.encode())

    async def claim(self, name: str) -> Answer:
        return await self.call("POST", f"/dir/v1/prekeys/{name}/claim")

    async def left(self) -> int:
        status, body = await self.call("GET", "/dir/v1/prekeys")
        assert status == 200, body
        return int(body["one_time_left"])


async def members(cluster: Cluster, *names: str) -> tuple[aiohttp.ClientSession, list[Member]]:
    assert cluster.directory_tls is not None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(cluster.directory_tls))
    )
    found = [Member(cluster, session, name) for name in names]
    for member in found:
        await member.enroll()
    return session, found


def spoiled(upload: PrekeyUpload, how: str, other: Identity) -> dict[str, Any]:
    """The upload with one record wrong in the way `how` names."""
    body = upload.model_dump()
    first, fallback = body["one_time"][0], body["fallback"]
    if how == "another user's":
        first["username"] = "quin"
    elif how == "another identity":
        first["identity"] = b64e(Identity.generate().x25519_key)
    elif how == "one-time says fallback":
        first["fallback"] = True
    elif how == "fallback says one-time":
        fallback["fallback"] = False
    elif how == "a key changed":
        first["key"] = fallback["key"]
    elif how == "signed by someone else":
        record = PrekeyRecord.model_validate(first)
        forged = sign_prekey(other, "pam", record.identity, record.key, fallback=False)
        body["one_time"][0] = forged.model_dump()
    return body


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("another user's", "bad_request"),
        ("another identity", "bad_request"),
        ("one-time says fallback", "bad_request"),
        ("fallback says one-time", "bad_request"),
        ("a key changed", "bad_signature"),
        ("signed by someone else", "bad_signature"),
    ],
)
async def test_the_directory_stores_only_an_upload_of_the_callers_own_signed_keys(
    cluster: Cluster, how: str, error: str
) -> None:
    await unlimited_directory(cluster)
    session, (pam, quin) = await members(cluster, "pam", "quin")
    try:
        good = pam.upload(3)
        status, body = await pam.put(spoiled(good, how, quin.identity))
        assert (status, body["error"]) == (400, error), body
        assert body["message"]  # a reason, in words
        assert await pam.left() == 0  # nothing of it was kept
        status, body = await quin.claim("pam")
        assert (status, body["error"]) == (404, "no_prekeys")
        assert await pam.put(good) == (200, {"one_time_left": 3})
    finally:
        await session.close()


async def test_each_one_time_key_is_claimed_once_then_the_fallback_and_a_put_replaces_them(
    cluster: Cluster,
) -> None:
    await unlimited_directory(cluster)
    session, (pam, quin, ray) = await members(cluster, "pam", "quin", "ray")
    try:
        status, body = await quin.claim("pam")  # nothing published yet
        assert (status, body["error"]) == (404, "no_prekeys"), body
        upload = pam.upload(3)
        assert await pam.put(upload) == (200, {"one_time_left": 3})
        published = {r.key for r in upload.one_time}
        claimed = []
        for claimer, left in ((quin, 2), (ray, 1), (quin, 0)):
            status, body = await claimer.claim("pam")
            assert status == 200, body
            record = PrekeyRecord.model_validate(body["prekey"])
            assert record.fallback is False and record == next(
                r for r in upload.one_time if r.key == record.key
            )  # exactly as signed
            claimed.append(record.key)
            assert await pam.left() == left
        assert sorted(claimed) == sorted(published)  # each one once, to one claimer
        for claimer in (ray, quin):  # then the fallback key, to everyone, as often as asked
            status, body = await claimer.claim("pam")
            assert status == 200 and body["prekey"] == upload.fallback.model_dump()
        assert await pam.left() == 0
        again = pam.upload(2)  # a refill replaces what the directory held, fallback too
        assert await pam.put(again) == (200, {"one_time_left": 2})
        keys = {PrekeyRecord.model_validate((await quin.claim("pam"))[1]["prekey"]).key}
        keys.add(PrekeyRecord.model_validate((await quin.claim("pam"))[1]["prekey"]).key)
        assert keys == {r.key for r in again.one_time}
        assert (await quin.claim("pam"))[1]["prekey"] == again.fallback.model_dump()
    finally:
        await session.close()


async def test_a_daemon_refills_its_prekeys_when_few_are_left_and_a_session_starts_from_the_fallback(
    cluster: Cluster,
) -> None:
    """bob's daemon publishes PREKEYS_TARGET one-time keys; once a claimer took all of them, alice
    starts her session from his fallback key, and her message opens under version 2. bob's next
    round (run here rather than awaited: it comes every minute) publishes a full set again; with
    PREKEYS_LOW or more left it publishes nothing."""
    await unlimited_directory(cluster)
    alice, bob = await cluster.add_user("alice"), await cluster.add_user("bob")
    session, (pam,) = await members(cluster, "pam")
    bob_sessions = services_of(bob).sessions
    as_bob = Member(cluster, session, "bob")
    as_bob.identity = identity_of(bob)
    try:
        # Published at the daemon's first round (no event says when).
        await eventually(as_bob.left, equals=ratchet.PREKEYS_TARGET, timeout=20)
        for _ in range(ratchet.PREKEYS_TARGET):
            status, body = await pam.claim("bob")
            assert status == 200 and body["prekey"]["fallback"] is False
        status, body = await pam.claim("bob")
        assert body["prekey"]["fallback"] is True
        assert await as_bob.left() == 0

        a_ui, b_ui = await cluster.ui("alice"), await cluster.ui("bob")
        b_feed = await b_ui.websocket()
        await a_ui.send("bob", "from the fallback key")
        event = await b_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["text"] == "from the fallback key"
        )
        assert event["message"]["protocol_version"] == 2
        assert await as_bob.left() == 0  # alice's claim took no one-time key: the fallback

        await bob_sessions.prekeys_once()  # fewer than PREKEYS_LOW left: a full set again
        assert await as_bob.left() == ratchet.PREKEYS_TARGET
        for _ in range(ratchet.PREKEYS_TARGET - ratchet.PREKEYS_LOW):
            assert (await pam.claim("bob"))[0] == 200
        await bob_sessions.prekeys_once()  # PREKEYS_LOW left: enough, nothing published
        assert await as_bob.left() == ratchet.PREKEYS_LOW
        assert services_of(alice).sessions.cache["bob"]  # her session, the one that opened
    finally:
        await session.close()

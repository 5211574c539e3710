"""Presence pushed (PROTOCOL.md §5.5) and the cursor (§5.4): a status change and a log-off reach
another daemon's UI within a second, with that daemon's poll far too slow to be the reason; and
what the subscription and the cursor refuse."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.daemon import Daemon
from tests.cluster import Cluster, directory_tls, identity_of, services_of
from tests.e2e.test_directory import pinned

SLOW_POLL = {"directory_sync_s": 600.0}  # far slower than the second a push must take


def presence_event(name: str, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "presence" and e["username"] == name and e["status"] == status


async def subscribed(node: Daemon) -> None:
    await services_of(node).directory_sync.subscribed.wait()


async def test_a_status_change_and_a_log_off_reach_another_ui_within_a_second(
    cluster: Cluster,
) -> None:
    await cluster.start_directory(ttl_s=60.0)  # no expiry can be what shows bob offline
    alice = await cluster.add_user("alice", **SLOW_POLL)
    bob = await cluster.add_user("bob")
    await subscribed(alice)
    await services_of(alice).directory_sync.sync_once()  # bob is known, and online
    alice_ui = await cluster.ui("alice")
    feed = await alice_ui.websocket()
    await alice_ui.wait_status(feed, "bob", "online")
    bob_ui = await cluster.ui("bob")

    pushed = services_of(alice).directory_sync.frames
    for choice in ("away", "busy", "online"):
        await bob_ui.put("/ui/api/status", {"status": choice})
        await feed.wait_for(presence_event("bob", choice), timeout=1.0)
    await cluster.stop_daemon("bob")  # a clean stop logs off
    await feed.wait_for(presence_event("bob", "offline"), timeout=1.0)
    assert services_of(alice).directory_sync.frames >= pushed + 4  # pushed, not polled
    assert bob is not None


async def test_a_daemon_that_missed_frames_catches_up_by_cursor(cluster: Cluster) -> None:
    await cluster.start_directory(ttl_s=60.0)
    alice = await cluster.add_user("alice", **SLOW_POLL)
    await subscribed(alice)
    sync = services_of(alice).directory_sync
    behind = sync.cursor
    await cluster.add_user("carol")  # while alice's cursor is set back below
    sync.cursor = 0  # as if alice had missed every frame so far
    await sync.sync_once()
    assert sync.cursor > behind
    assert await services_of(alice).contacts.get("carol") is not None


async def signed_get(
    cluster: Cluster, node: Daemon, path: str, **headers: str
) -> tuple[int, dict[str, object]]:
    url = cluster.directory_url
    signed = sign_request(
        identity_of(node), services_of(node).ctx.me, DIRECTORY_AUDIENCE, "GET", path,
        url.removeprefix("https://"), b"", int(time.time()),
    )  # fmt: skip
    async with aiohttp.ClientSession(connector=pinned(directory_tls(cluster))) as session:
        async with session.get(url + path, headers={**signed, **headers}) as response:
            body = await response.json() if response.status != 304 else {}
            return response.status, body


@pytest.mark.parametrize("key", ["", "x", "é" * 24])
async def test_a_broken_websocket_handshake_is_400_never_500(cluster: Cluster, key: str) -> None:
    """A signed GET of the subscription without a handshake, or with a Sec-WebSocket-Key that is
    not 16 bytes of base64 (aiohttp raises ValueError for one that is not ASCII): a 400 with a
    JSON reason."""
    await cluster.start_directory()
    alice = await cluster.add_user("alice")
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    headers = {} if not key else {**handshake, "Sec-WebSocket-Key": key}
    status, body = await signed_get(cluster, alice, "/dir/v1/subscribe", **headers)
    assert status == 400 and isinstance(body.get("message"), str)


@pytest.mark.parametrize("cursor", ["-1", "abc", "1e3", "99999999999999999999", ""])
async def test_a_garbage_cursor_is_400(cluster: Cluster, cursor: str) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice")
    status, body = await signed_get(cluster, alice, f"/dir/v1/users?since={cursor}")
    assert (status, body["error"]) == (400, "bad_cursor")


async def test_a_cursor_from_the_future_is_400_and_the_daemon_starts_over(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice", **SLOW_POLL)
    await cluster.add_user("bob")
    status, body = await signed_get(cluster, alice, "/dir/v1/users?since=999999")
    assert (status, body["error"]) == (400, "bad_cursor")
    assert "ahead" in str(body["message"])
    sync = services_of(alice).directory_sync
    sync.cursor = 999_999  # a directory restored from an older backup
    await sync.sync_once()
    assert cluster.directory is not None and cluster.directory.store is not None
    assert sync.cursor == await cluster.directory.store.head()
    assert await services_of(alice).contacts.get("bob") is not None


async def test_an_unchanged_poll_is_304_until_the_listing_changes(cluster: Cluster) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice")
    status, _ = await signed_get(cluster, alice, "/dir/v1/users")
    assert status == 200
    assert cluster.directory is not None and cluster.directory.store is not None
    store = cluster.directory.store
    # alice's own daemon may still be changing the listing (its first reports): a 200 comes only
    # with a head that moved, and once it stands still the answer is 304.
    for _ in range(20):
        head = await store.head()
        etag = f'"c{head}"'
        status, _ = await signed_get(cluster, alice, "/dir/v1/users", **{"If-None-Match": etag})
        if status == 304:
            break
        assert status == 200 and await store.head() > head
    assert status == 304
    await cluster.add_user("bob")
    status, body = await signed_get(cluster, alice, "/dir/v1/users", **{"If-None-Match": etag})
    assert status == 200 and "bob" in {u["user"]["username"] for u in body["users"]}  # type: ignore[attr-defined]


async def test_a_subscription_unsigned_or_replayed_is_refused(cluster: Cluster) -> None:
    await cluster.start_directory()
    alice = await cluster.add_user("alice")
    url = cluster.directory_url
    path = "/dir/v1/subscribe"
    async with aiohttp.ClientSession(connector=pinned(directory_tls(cluster))) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as unsigned:
            await session.ws_connect(url + path)
        assert unsigned.value.status == 401
        signed = sign_request(
            identity_of(alice), "alice", DIRECTORY_AUDIENCE, "GET", path,
            url.removeprefix("https://"), b"", int(time.time()),
        )  # fmt: skip
        ws = await session.ws_connect(url + path, headers=signed)
        first = await ws.receive_json(timeout=5)
        assert first["users"] == [] and first["since"] == first["cursor"]
        await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as replayed:
            await session.ws_connect(url + path, headers=signed)
        assert replayed.value.status == 401
        forged = {**signed, "Flame-Signature": signed["Flame-Signature"][:-4] + "AAAA"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as bad:
            await session.ws_connect(url + path, headers=forged)
        assert bad.value.status == 401
    assert cluster.directory.parts is not None  # type: ignore[union-attr]
    assert (await signed_get(cluster, alice, "/dir/v1/users"))[0] == 200  # unaffected

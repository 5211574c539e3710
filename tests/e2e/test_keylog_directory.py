"""The directory's side of the key log (PROTOCOL.md §18.2, §18.3, §18.5): entries written in the
enrolment's own transaction and never changed, the routes and their refusals, the head on every
answer to a signed request, and a user whose keys were replaced still reading the log."""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flame.core import keylog
from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.keylog import KeyLogEntries, KeyLogHead, KeyLogProof
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.directory.sqlite_store import DIRECTORY_DB, SqliteStore
from tests.cluster import Cluster, directory_tls, identity_of
from tests.directory.helpers import enroll
from tests.e2e.test_keylog import expect_alarms

SCHEMA = "flame.directory.schema"


async def signed_get(
    cluster: Cluster, identity: Identity, name: str, path: str
) -> tuple[int, Any, dict[str, str]]:
    url = cluster.directory_url
    headers = sign_request(
        identity, name, DIRECTORY_AUDIENCE, "GET", path, url.removeprefix("https://"), b"",
        int(time.time()),
    )  # fmt: skip
    connector = aiohttp.TCPConnector(ssl=directory_tls(cluster))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url + path, headers=headers) as response:
            return response.status, await response.json(), dict(response.headers)


async def test_the_routes_give_a_signed_head_entries_and_proofs_that_verify(trio: Cluster) -> None:
    alice = identity_of(trio.daemons["alice"])
    connector = aiohttp.TCPConnector(ssl=directory_tls(trio))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(trio.directory_url + "/dir/v1/hello") as response:
            hello = await response.json()
            assert keylog.HEADER not in response.headers  # unsigned: no head
        async with session.get(trio.directory_url + "/dir/v1/keylog/head") as response:
            assert (response.status, (await response.json())["error"]) == (401, "unsigned")
            assert keylog.HEADER not in response.headers
    log_key = b64d(hello["key_log"], length=32)

    status, body, headers = await signed_get(trio, alice, "alice", "/dir/v1/keylog/head")
    head = KeyLogHead.model_validate(body)
    assert status == 200 and head.size == 3 and keylog.verify_head(head, log_key)
    assert keylog.parse_head_header(headers[keylog.HEADER]) == head  # on every signed answer
    _, _, headers = await signed_get(trio, alice, "alice", "/dir/v1/users")
    assert keylog.parse_head_header(headers[keylog.HEADER]) == head

    _, body, _ = await signed_get(trio, alice, "alice", "/dir/v1/keylog/entries/0")
    page = KeyLogEntries.model_validate(body)
    assert [(e.username, e.kind) for e in page.entries] == [
        ("alice", "enroll"), ("bob", "enroll"), ("carol", "enroll"),
    ]  # fmt: skip
    assert page.entries[0].identity_key == b64e(alice.identity_key)
    leaves = [keylog.entry_hash(e) for e in page.entries]
    assert keylog.MerkleTree(leaves).root() == keylog.head_root(head)
    _, body, _ = await signed_get(trio, alice, "alice", "/dir/v1/keylog/entries/3")
    assert body == {"start": 3, "entries": []}

    _, body, _ = await signed_get(trio, alice, "alice", "/dir/v1/keylog/inclusion/1/3")
    proof = [b64d(h) for h in KeyLogProof.model_validate(body).proof]
    assert keylog.verify_inclusion(leaves[1], 1, 3, proof, keylog.head_root(head))
    _, body, _ = await signed_get(trio, alice, "alice", "/dir/v1/keylog/consistency/1/3")
    proof = [b64d(h) for h in KeyLogProof.model_validate(body).proof]
    assert keylog.verify_consistency(1, 3, leaves[0], keylog.head_root(head), proof)

    for path, code in (
        ("/dir/v1/keylog/entries/4", "bad_range"),
        ("/dir/v1/keylog/consistency/2/4", "bad_range"),
        ("/dir/v1/keylog/consistency/3/2", "bad_range"),
        ("/dir/v1/keylog/inclusion/3/3", "bad_range"),
        ("/dir/v1/keylog/entries/01", "bad_request"),
        ("/dir/v1/keylog/inclusion/-1/3", "bad_request"),
        ("/dir/v1/keylog/entries/99999999999999999999", "bad_request"),
    ):
        status, body, headers = await signed_get(trio, alice, "alice", path)
        assert (status, body["error"]) == (400, code), path
        assert body["message"] and keylog.HEADER not in headers


async def test_a_user_whose_keys_were_replaced_can_still_read_the_log(
    trio: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    old_bob = identity_of(trio.daemons["bob"])
    bob_feed = await (await trio.ui("bob")).websocket()
    assert trio.directory is not None and trio.directory.store is not None
    code = await trio.directory.store.create_invite(
        "bob", rekey=True, now=int(time.time()), ttl_s=600
    )
    await trio.enroll("bob", invite=code, folder="bob-elsewhere")

    status, body, _ = await signed_get(trio, old_bob, "bob", "/dir/v1/users")
    assert (status, body["error"]) == (401, "bad_signature")  # the directory knows other keys
    status, body, headers = await signed_get(trio, old_bob, "bob", "/dir/v1/keylog/head")
    assert status == 200 and body["size"] == 4 and keylog.HEADER in headers
    status, body, _ = await signed_get(trio, Identity.generate(), "bob", "/dir/v1/keylog/head")
    assert (status, body["error"]) == (401, "bad_signature")  # a key the log never held for bob

    # bob's own daemon, told of the rekey by its push, raises its alarm (tests/e2e/test_keylog.py)
    event = await bob_feed.wait_for(lambda e: e["type"] == "key_log_alarm", timeout=20)
    assert event["alarm"]["kind"] == "rekeyed"
    assert expect_alarms(caplog) == ["rekeyed"]


async def open_at(path: Path, version: int) -> None:
    """A directory database made by migrations 1 .. `version` alone (an older directory)."""
    conn = sqlite3.connect(path)
    try:
        for number in range(1, version + 1):
            name = next(
                f.name
                for f in resources.files(SCHEMA).iterdir()
                if f.name.startswith(f"{number:03d}_")
            )
            conn.executescript(resources.files(SCHEMA).joinpath(name).read_text())
        conn.execute(f"PRAGMA user_version={version}")
        conn.commit()
    finally:
        conn.close()


async def test_an_older_directorys_users_start_the_log_in_the_order_they_enrolled(
    tmp_path: Path,
) -> None:
    """A directory's SQLite file made before the log (migrations 1 to 3): migration 005 writes one
    entry per user, in the order they enrolled; the next enrolment follows them. (Entries per
    enrolment and the append-only rule on both back ends: tests/directory/test_keylog_store.py.)"""
    path = tmp_path / DIRECTORY_DB
    await open_at(path, 3)
    conn = sqlite3.connect(path)
    for name, at in (("bob", 20), ("alice", 10), ("carol", 20)):
        conn.execute(
            "INSERT INTO users VALUES (?,?,?,?,?)", (name, b"i" * 32, b"x" * 32, b"s" * 64, at)
        )
    conn.commit()
    conn.close()

    directory = await SqliteStore.open(tmp_path)  # migrations 004 and 005: the log begins
    try:
        logged = await directory.keylog_entries(0, keylog.PAGE_MAX)
        assert [(e.username, e.kind, e.ts) for e in logged] == [
            ("alice", "enroll", 10), ("bob", "enroll", 20), ("carol", "enroll", 20),
        ]  # fmt: skip
        await enroll(directory, "dave", now=30)
        logged = await directory.keylog_entries(0, keylog.PAGE_MAX)
        assert [(e.username, e.kind) for e in logged] == [
            ("alice", "enroll"), ("bob", "enroll"), ("carol", "enroll"), ("dave", "enroll"),
        ]  # fmt: skip
    finally:
        await directory.close()

"""The directory's side of the key log (PROTOCOL.md §17.2, §17.3, §17.5): entries written in the
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
import sqlcipher3

from flame.core import keylog
from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.keylog import KeyLogEntries, KeyLogHead, KeyLogProof
from flame.core.models import UserRecord
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.directory import keylog_store, store
from flame.errors import Forbidden
from flame.store.db import Database
from tests.cluster import Cluster, directory_tls, identity_of

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


async def test_a_user_whose_keys_were_replaced_can_still_read_the_log(trio: Cluster) -> None:
    old_bob = identity_of(trio.daemons["bob"])
    assert trio.directory is not None and trio.directory.db is not None
    db = trio.directory.db
    code = await store.create_invite(db, "bob", rekey=True, now=int(time.time()), ttl_s=600)
    await trio.enroll("bob", invite=code, folder="bob-elsewhere")

    status, body, _ = await signed_get(trio, old_bob, "bob", "/dir/v1/users")
    assert (status, body["error"]) == (401, "bad_signature")  # the directory knows other keys
    status, body, headers = await signed_get(trio, old_bob, "bob", "/dir/v1/keylog/head")
    assert status == 200 and body["size"] == 4 and keylog.HEADER in headers
    status, body, _ = await signed_get(trio, Identity.generate(), "bob", "/dir/v1/keylog/head")
    assert (status, body["error"]) == (401, "bad_signature")  # a key the log never held for bob


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


def user(name: str, identity: Identity, at: int) -> tuple[UserRecord, tuple[bytes, bytes, bytes]]:
    keys = (identity.identity_key, identity.x25519_key, identity.binding_signature(name))
    record = UserRecord(
        username=name,
        identity_key=b64e(keys[0]),
        x25519_key=b64e(keys[1]),
        x25519_sig=b64e(keys[2]),
        enrolled_at=at,
    )
    return record, keys


async def test_entries_come_with_each_enrolment_and_never_change(tmp_path: Path) -> None:
    """An older directory's users start the log, in the order they enrolled; each later
    enrolment that binds keys adds one entry in its own transaction; nothing changes one."""
    path = tmp_path / "directory.db"
    await open_at(path, 3)
    conn = sqlite3.connect(path)
    for name, at in (("bob", 20), ("alice", 10), ("carol", 20)):
        conn.execute(
            "INSERT INTO users VALUES (?,?,?,?,?)", (name, b"i" * 32, b"x" * 32, b"s" * 64, at)
        )
    conn.commit()
    conn.close()

    db = await Database.open(path, SCHEMA)  # migration 004: the log begins
    try:
        logged = await keylog_store.entries_from(db, 0)
        assert [(e.username, e.kind, e.ts) for e in logged] == [
            ("alice", "enroll", 10), ("bob", "enroll", 20), ("carol", "enroll", 20),
        ]  # fmt: skip

        dave, keys = user("dave", Identity.generate(), 30)
        await store.enroll(db, dave, keys, None, open_registration=True, now=30)
        code = await store.create_invite(db, "alice", rekey=True, now=40, ttl_s=60)
        alice, keys = user("alice", Identity.generate(), 40)
        await store.enroll(db, alice, keys, code, open_registration=True, now=40)
        code = await store.create_invite(db, "bob", rekey=True, now=50, ttl_s=60)
        with pytest.raises(Forbidden, match="for another username"):
            await store.enroll(db, alice, keys, code, open_registration=True, now=50)
        logged = await keylog_store.entries_from(db, 0)
        assert [(e.username, e.kind) for e in logged][3:] == [
            ("dave", "enroll"),
            ("alice", "rekey"),
        ]
        assert logged[4].identity_key == alice.identity_key  # a refused enrolment logs nothing

        for sql in ("UPDATE keylog SET username='mallory'", "DELETE FROM keylog"):
            with pytest.raises(sqlcipher3.IntegrityError, match="append-only"):
                await db.execute(sql)
        assert len(await keylog_store.entries_from(db, 0)) == 5
    finally:
        await db.close()

"""A data folder of an older version (plaintext database and WAL, keystore inside the database,
plaintext files) is converted at the first unlock, and afterwards no plaintext is left on disk
(docs/ARCHITECTURE.md, "At rest"). Each step is crash-safe: the states a kill could leave
behind are built here and unlocked."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from importlib import resources
from pathlib import Path

import sqlcipher3
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from flame.core.crypto import KEYSTORE_CONTEXT, Identity, KdfParams, new_db_key, seal_keystore
from flame.core.encoding import b64e
from flame.core.keys import Account, Keys
from flame.net.peer_client import PeerClient
from flame.services.account import enroll_request
from flame.store.keystore import read_account, write_account
from flame.store.messages import message_key
from tests.cluster import PASSWORD, Cluster, account_of
from tests.files_helpers import fetch

MARK = "Board minutes, not for anyone else: 9F1D-C0DE"
CONTENT = (MARK + "\n").encode() * 3000  # 138 KB: three chunks of 64 KiB
PARTIAL = (MARK + "!\n").encode() * 2500  # a receipt cut short after its first chunk
CHUNK = 64 * 1024
CHEAP = KdfParams(64, 1, 1)


def legacy_seal(identity: Identity, password: str) -> tuple[bytes, bytes, bytes]:
    """The keystore of the older version: the 64-byte secret alone (PROTOCOL.md §3.6)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    key = Argon2id(salt=salt, length=32, iterations=1, lanes=1, memory_cost=64).derive(
        password.encode()
    )
    aad = KEYSTORE_CONTEXT + b"alice"
    return salt, nonce, ChaCha20Poly1305(key).encrypt(nonce, identity.secret(), aad)


def schema_up_to(version: int) -> list[str]:
    entries = resources.files("flame.store.schema").iterdir()
    scripts = sorted((e.name, e.read_text()) for e in entries if e.name.endswith(".sql"))
    return [sql for name, sql in scripts if int(name.split("_", 1)[0]) <= version]


def file_row(
    stored_name: str, transfer_id: str, data: bytes, state: str, held: int
) -> tuple[object, ...]:
    return (
        "bob",
        "in",
        transfer_id,
        None,
        f"{transfer_id}.txt",
        len(data),
        "text/plain",
        None,
        hashlib.sha256(data).digest(),
        os.urandom(32),
        os.urandom(32),
        CHUNK,
        stored_name,
        state,
        held,
        time.time(),
    )


def build_legacy_folder(folder: Path, identity: Identity, bob: Account, directory: str) -> None:
    """alice's folder as the version before encryption left it after a crash: a plaintext
    database whose last commits are still in its WAL, and plaintext files."""
    staging = folder.parent / "staging"
    staging.mkdir()
    conn = sqlcipher3.connect(str(staging / "flame.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # what is written below stays in the WAL
    for sql in schema_up_to(6):
        conn.executescript(f"BEGIN;\n{sql}\nCOMMIT;")
    conn.execute("PRAGMA user_version=6")
    salt, nonce, ciphertext = legacy_seal(identity, PASSWORD)
    conn.execute(
        "INSERT INTO keystore VALUES (1, 'alice', ?, ?, ?, ?, ?, ?, 64, 1, 1)",
        (
            identity.identity_key,
            identity.x25519_key,
            identity.binding_signature("alice"),
            salt,
            nonce,
            ciphertext,
        ),
    )
    conn.execute("INSERT INTO meta VALUES ('directory_url', ?)", (directory,))
    conn.execute(
        "INSERT INTO contacts (username, identity_key, x25519_key, x25519_sig, pinned_at)"
        " VALUES ('bob', ?, ?, ?, 0)",
        (bob.identity_key, bob.x25519_key, bob.x25519_sig),
    )
    conn.execute(
        "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at,"
        " received_at, state) VALUES (?, 'bob', 'in', 'bob', 1, 'text', ?, ?, ?, 'received')",
        (message_key("bob", b64e(bytes(16))), f'{{"text": "{MARK}"}}', time.time(), time.time()),
    )
    columns = (
        "peer, direction, transfer_id, message_id, name, size, declared_type, media_type,"
        " sha256, file_key, upload_token, chunk_bytes, stored_name, state, held_bytes, created_at"
    )
    for row in (
        file_row("in-" + "a" * 32, b64e(b"A" * 16), CONTENT, "complete", len(CONTENT)),
        file_row("in-" + "b" * 32, b64e(b"B" * 16), PARTIAL, "receiving", CHUNK),
    ):
        conn.execute(f"INSERT INTO transfers ({columns}) VALUES ({','.join('?' * 16)})", row)
    folder.mkdir(mode=0o700)
    for name in ("flame.db", "flame.db-wal"):  # copied while open: a crash's image
        shutil.copyfile(staging / name, folder / name)
    conn.close()
    files = folder / "files"
    files.mkdir(mode=0o700)
    (files / ("in-" + "a" * 32)).write_bytes(CONTENT)
    (files / ("in-" + "b" * 32 + ".part")).write_bytes(PARTIAL[: CHUNK + 5000])


def holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


async def legacy_alice(cluster: Cluster) -> tuple[Path, Identity]:
    """A directory, bob (current version) and alice's older data folder, enrolled."""
    await cluster.start_directory()
    bob = await cluster.add_user("bob")
    identity = Identity.generate()
    settings = cluster.settings_for("alice")
    client = PeerClient(Keys(account_of(bob)), 5.0, time.time)  # enrollment is unsigned
    try:
        await client.enroll(cluster.directory_url, enroll_request(identity, "alice", None))
    finally:
        await client.close()
    folder = settings.daemon_data_dir()
    build_legacy_folder(folder, identity, account_of(bob), cluster.directory_url)
    return folder, identity


async def unlock_and_check(cluster: Cluster, folder: Path) -> None:
    """Log in: the folder is converted; everything is still there, and no plaintext."""
    alice = await cluster.start_daemon("alice", unlocked=False)
    assert read_account(folder) is not None  # moved out of the database at start, still locked
    ui = await cluster.ui("alice")
    assert [m["text"] for m in await ui.messages("bob")] == [MARK]
    status, (body, _) = await fetch(ui, "bob", b64e(b"A" * 16))
    assert status == 200 and body == CONTENT
    assert holding(folder, MARK.encode()) == []
    assert (
        not (folder / "flame.db-wal").exists()
        or MARK.encode() not in (folder / "flame.db-wal").read_bytes()
    )
    names = sorted(p.name for p in (folder / "files").iterdir())
    assert len(names) == 2 and "in-" + "a" * 32 not in names  # rewritten under new names
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("flame.db")) <= [
        "flame.db",
        "flame.db-shm",
        "flame.db-wal",
    ]
    assert alice.services is not None


async def test_an_older_plaintext_folder_is_encrypted_at_the_first_unlock(cluster: Cluster) -> None:
    folder, _ = await legacy_alice(cluster)
    before = holding(folder, MARK.encode())
    assert "flame.db-wal" in before and "files/in-" + "a" * 32 in before  # the test's premise
    await unlock_and_check(cluster, folder)
    await cluster.stop_daemon("alice")  # and it opens again, encrypted, with the same password
    await cluster.start_daemon("alice")
    assert [m["text"] for m in await (await cluster.ui("alice")).messages("bob")] == [MARK]


async def test_a_conversion_cut_short_by_a_crash_is_done_again(cluster: Cluster) -> None:
    """What a kill could leave: the keystore already sealed again with a database key, a half
    written encrypted copy, the plaintext database and files still in place."""
    folder, identity = await legacy_alice(cluster)
    legacy = read_account(folder)
    assert legacy is None  # not yet moved: the first start does it
    (folder / "flame.db.encrypting").write_bytes(os.urandom(10_000))
    account = Account(
        "alice",
        identity.identity_key,
        identity.x25519_key,
        identity.binding_signature("alice"),
        seal_keystore(identity, new_db_key(), "alice", PASSWORD, CHEAP),
    )
    write_account(folder, account)
    await unlock_and_check(cluster, folder)
    assert not (folder / "flame.db.encrypting").exists()

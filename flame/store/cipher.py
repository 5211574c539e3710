"""Encrypting a plaintext database of an older version (docs/ARCHITECTURE.md, "At rest"): the
whole file is rewritten into a new, encrypted one with `sqlcipher_export`, made durable, and
renamed over the old, so no plaintext page stays in the data folder, deleted rows included.

Crash-safe: the old file is complete until the rename (its WAL folded into it first), and a
half-written new file is thrown away and written again by the next attempt.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import sqlcipher3

from flame.core.crypto import KdfParams, SealedKeystore
from flame.core.keys import Account
from flame.store.db import key_pragma
from flame.store.folder import create_private, fsync_file, fsync_folder

log = logging.getLogger("flame.store")

PLAINTEXT_HEADER = b"SQLite format 3\x00"  # an encrypted file starts with its random salt
ENCRYPTING_SUFFIX = ".encrypting"
SIDE_FILES = ("-wal", "-shm", "-journal")


def is_plaintext(path: Path) -> bool:
    """A plain SQLite file (SQLCipher's first 16 bytes are random, never this header)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(PLAINTEXT_HEADER)) == PLAINTEXT_HEADER
    except FileNotFoundError:
        return False


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def encrypt_plaintext(path: Path, key: bytes) -> None:
    """Replace the plaintext database at `path` by an encrypted copy under `key` (blocking: run it
    in a thread, under the folder lock)."""
    new = path.with_name(path.name + ENCRYPTING_SUFFIX)
    for leftover in (new, *(new.with_name(new.name + side) for side in SIDE_FILES)):
        _unlink(leftover)  # an attempt that a crash cut short
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    try:
        # Fold the WAL into the main file and remove it: from here the old file alone is whole.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        create_private(new)  # 0600 before SQLite writes a byte
        conn.execute("ATTACH DATABASE ? AS encrypted KEY ?", (str(new), key_pragma(key)))
        conn.execute("SELECT sqlcipher_export('encrypted')")
        conn.execute(f"PRAGMA encrypted.user_version = {int(version)}")  # not exported
        conn.execute("DETACH DATABASE encrypted")
    finally:
        conn.close()
    fsync_file(new)
    new.replace(path)
    fsync_folder(path.parent)
    for side in SIDE_FILES:  # the old file's, if any: plaintext, and no longer of any use
        _unlink(path.with_name(path.name + side))
    log.info("encrypted the database %s", path)


def read_legacy_account(path: Path) -> Account | None:
    """The keystore row of a plaintext database from before keystore.json (blocking), or None."""
    conn = sqlcipher3.connect(str(path))  # under the folder lock: nobody else has it open
    try:
        row = conn.execute(
            "SELECT username, identity_key, x25519_key, x25519_sig, salt, nonce, ciphertext,"
            " memory_kib, iterations, lanes FROM keystore WHERE id = 1"
        ).fetchone()
    except sqlcipher3.OperationalError:  # no such table: not a Flame database of that age
        return None
    finally:
        conn.close()
    if row is None:
        return None
    username, identity_key, x25519_key, x25519_sig, salt, nonce, ciphertext, *cost = row
    sealed = SealedKeystore(bytes(salt), bytes(nonce), bytes(ciphertext), KdfParams(*cost))
    return Account(str(username), bytes(identity_key), bytes(x25519_key), bytes(x25519_sig), sealed)

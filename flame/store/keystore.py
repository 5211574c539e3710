"""The keystore record (<data>/keystore.json, 0600): the username, the public keys and the sealed
private keys and database key (PROTOCOL.md §3.6). It lives outside the encrypted database, because
a locked daemon must still say who it is (hello) and check the UI's password. Also the meta values,
which live inside the database.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flame.core.crypto import KdfParams, SealedKeystore
from flame.core.encoding import b64d, b64e
from flame.core.keys import Account
from flame.errors import BadRequest, FlameError
from flame.store.db import Database
from flame.store.folder import write_private

KEYSTORE_FILE = "keystore.json"
FORMAT = "flame-keystore-1"


class Argon2Record(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
    memory_kib: int = Field(ge=8)
    iterations: int = Field(ge=1)
    lanes: int = Field(ge=1, le=16)


class KeystoreRecord(BaseModel):
    """The file's JSON; byte fields are base64url (PROTOCOL.md §2.1)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
    format: str
    username: str
    identity_key: str
    x25519_key: str
    x25519_sig: str
    argon2id: Argon2Record
    salt: str
    nonce: str
    ciphertext: str


def keystore_path(data_dir: Path) -> Path:
    return data_dir / KEYSTORE_FILE


def encode_account(account: Account) -> bytes:
    sealed = account.sealed
    record = KeystoreRecord(
        format=FORMAT,
        username=account.username,
        identity_key=b64e(account.identity_key),
        x25519_key=b64e(account.x25519_key),
        x25519_sig=b64e(account.x25519_sig),
        argon2id=Argon2Record(
            memory_kib=sealed.params.memory_kib,
            iterations=sealed.params.iterations,
            lanes=sealed.params.lanes,
        ),
        salt=b64e(sealed.salt),
        nonce=b64e(sealed.nonce),
        ciphertext=b64e(sealed.ciphertext),
    )
    return (record.model_dump_json(indent=2) + "\n").encode()


def decode_account(raw: bytes) -> Account:
    """Raises ValueError (pydantic's, or BadRequest's) for anything but a keystore record."""
    record = KeystoreRecord.model_validate_json(raw)
    if record.format != FORMAT:
        raise ValueError(f"unknown format {record.format!r}")
    kdf = record.argon2id
    sealed = SealedKeystore(
        b64d(record.salt, length=16, what="salt"),
        b64d(record.nonce, length=12, what="nonce"),
        b64d(record.ciphertext, what="ciphertext"),
        KdfParams(kdf.memory_kib, kdf.iterations, kdf.lanes),
    )
    return Account(
        record.username,
        b64d(record.identity_key, length=32, what="identity_key"),
        b64d(record.x25519_key, length=32, what="x25519_key"),
        b64d(record.x25519_sig, length=64, what="x25519_sig"),
        sealed,
    )


def read_account(data_dir: Path) -> Account | None:
    """The account of this data folder, or None when it has no keystore file."""
    path = keystore_path(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FlameError(f"Cannot read the keystore {path}: {exc.strerror}.") from exc
    try:
        return decode_account(raw)
    except (ValidationError, BadRequest, ValueError) as exc:
        raise FlameError(f"The keystore {path} is damaged; restore it from a backup.") from exc


def write_account(data_dir: Path, account: Account) -> None:
    """Atomically and durably (a crash leaves the old record or the new one), 0600."""
    write_private(keystore_path(data_dir), encode_account(account))


async def get_meta(db: Database, key: str) -> str | None:
    row = await db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
    return None if row is None else str(row["value"])


async def set_meta(db: Database, key: str, value: str) -> None:
    await db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


async def delete_meta(db: Database, key: str) -> None:
    await db.execute("DELETE FROM meta WHERE key = ?", (key,))

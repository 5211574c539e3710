"""This user's account row (username, public keys, the sealed private keys) and the meta values."""

from __future__ import annotations

from flame.core.crypto import KdfParams, SealedKeystore
from flame.core.keys import Account
from flame.store.db import Database


async def save_account(db: Database, account: Account, directory_url: str) -> None:
    s = account.sealed
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO keystore (id, username, identity_key, x25519_key, x25519_sig, salt, nonce,"
            " ciphertext, memory_kib, iterations, lanes) VALUES (1,?,?,?,?,?,?,?,?,?,?)",
            (
                account.username,
                account.identity_key,
                account.x25519_key,
                account.x25519_sig,
                s.salt,
                s.nonce,
                s.ciphertext,
                s.params.memory_kib,
                s.params.iterations,
                s.params.lanes,
            ),
        )
        await conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('directory_url', ?)", (directory_url,)
        )


async def load_account(db: Database) -> Account | None:
    row = await db.fetchone("SELECT * FROM keystore WHERE id = 1")
    if row is None:
        return None
    params = KdfParams(row["memory_kib"], row["iterations"], row["lanes"])
    sealed = SealedKeystore(row["salt"], row["nonce"], row["ciphertext"], params)
    return Account(
        row["username"], row["identity_key"], row["x25519_key"], row["x25519_sig"], sealed
    )


async def get_meta(db: Database, key: str) -> str | None:
    row = await db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
    return None if row is None else str(row["value"])


async def set_meta(db: Database, key: str, value: str) -> None:
    await db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

"""Contacts: pinned keys (trust on first use), pending key changes, and last known presence: the
address and the certificate fingerprint that calls to it pin (PROTOCOL.md §1.3, §5.3).

A contact is read many times per message (sealing, delivery, the receipt, the page), so the rows
read are kept in memory per database. Every write of the table is in this module, and each one
forgets what it may have changed once its transaction ended (committed or not): a read is never
served from memory what the table no longer says. Anything else that writes the table (a test)
calls `forget_cached`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosqlite

from flame.core.transport import Endpoint
from flame.store.db import Database, from_row


@dataclass(frozen=True, slots=True)
class Contact:
    username: str
    identity_key: bytes
    x25519_key: bytes
    x25519_sig: bytes
    pending_identity_key: bytes | None
    address: str | None
    tls: bytes | None  # SHA-256 of the certificate at `address`; None for plain http://
    status: str
    presence_ts: int | None
    # The identity key whose safety number the user confirmed (PROTOCOL.md §3.4), if any.
    verified_key: bytes | None = None

    @property
    def key_changed(self) -> bool:
        return self.pending_identity_key is not None

    @property
    def is_verified(self) -> bool:
        """The user confirmed the safety number of the key pinned now (a key change undoes it)."""
        return self.verified_key == self.identity_key and not self.key_changed

    @property
    def endpoint(self) -> Endpoint | None:
        """Where to call this contact, with the certificate to expect; None: no address yet."""
        return None if not self.address else Endpoint(self.address, self.tls, self.username)


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    username: str
    address: str | None
    tls: bytes | None
    status: str
    presence_ts: int | None


def _contact(r: aiosqlite.Row) -> Contact:
    return from_row(Contact, r)


# database -> username -> its contact as last read (None: no such contact)
_read: weakref.WeakKeyDictionary[Database, dict[str, Contact | None]] = weakref.WeakKeyDictionary()


def forget_cached(db: Database) -> None:
    """Forget every contact read from `db`: the next reads go to the table."""
    _read.pop(db, None)


@contextlib.asynccontextmanager
async def _writing(db: Database) -> AsyncIterator[None]:
    """Around a write of the table: what was read before is forgotten once it ended (a reader
    waits for the lock while it runs, and can only fill the memory again from what it left)."""
    try:
        yield
    finally:
        forget_cached(db)


async def get_contact(db: Database, username: str) -> Contact | None:
    known = _read.setdefault(db, {})
    if username in known:
        return known[username]
    row = await db.fetchone("SELECT * FROM contacts WHERE username = ?", (username,))
    contact = None if row is None else _contact(row)
    _read.setdefault(db, {})[username] = contact  # (re-read: a write may have forgotten `known`)
    return contact


async def list_contacts(db: Database) -> list[Contact]:
    rows = await db.fetchall("SELECT * FROM contacts ORDER BY username")
    return [_contact(row) for row in rows]


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    """The outcome of offering a (verified) directory record: what the caller should announce."""

    is_new: bool = False
    is_key_change: bool = False


async def offer_keys(
    db: Database,
    username: str,
    identity_key: bytes,
    x25519_key: bytes,
    x25519_sig: bytes,
    now: float,
) -> KeyUpdate:
    """Pin on first use; a different identity key is parked as pending, never used silently.

    The caller has verified that x25519_sig binds x25519_key to identity_key and username.
    """
    async with _writing(db), db.transaction() as conn:
        async with conn.execute(
            "SELECT identity_key, x25519_key, pending_identity_key FROM contacts WHERE username=?",
            (username,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            await conn.execute(
                "INSERT INTO contacts (username, identity_key, x25519_key, x25519_sig, pinned_at)"
                " VALUES (?,?,?,?,?)",
                (username, identity_key, x25519_key, x25519_sig, now),
            )
            return KeyUpdate(is_new=True)
        if row["identity_key"] == identity_key:
            if row["x25519_key"] != x25519_key:  # same identity vouching for a new X25519 key
                await conn.execute(
                    "UPDATE contacts SET x25519_key=?, x25519_sig=? WHERE username=?",
                    (x25519_key, x25519_sig, username),
                )
            if row["pending_identity_key"] is not None:  # back to the pinned key
                await conn.execute(
                    "UPDATE contacts SET pending_identity_key=NULL, pending_x25519_key=NULL,"
                    " pending_x25519_sig=NULL, key_changed_at=NULL WHERE username=?",
                    (username,),
                )
            return KeyUpdate()
        if row["pending_identity_key"] == identity_key:
            return KeyUpdate()
        await conn.execute(
            "UPDATE contacts SET pending_identity_key=?, pending_x25519_key=?, pending_x25519_sig=?,"
            " key_changed_at=? WHERE username=?",
            (identity_key, x25519_key, x25519_sig, now, username),
        )
        return KeyUpdate(is_key_change=True)


async def accept_pending_key(db: Database, username: str, now: float) -> bool:
    async with _writing(db), db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE contacts SET identity_key=pending_identity_key, x25519_key=pending_x25519_key,"
            " x25519_sig=pending_x25519_sig, pending_identity_key=NULL, pending_x25519_key=NULL,"
            " pending_x25519_sig=NULL, key_changed_at=NULL, pinned_at=?"
            " WHERE username=? AND pending_identity_key IS NOT NULL",
            (now, username),
        )
        return cursor.rowcount > 0


async def set_verified(db: Database, username: str, verified: bool) -> bool:
    """Mark the pinned identity key as compared and confirmed by the user, or no longer. False
    for an unknown contact."""
    async with _writing(db), db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE contacts SET verified_key=CASE WHEN ? THEN identity_key END WHERE username=?",
            (verified, username),
        )
        return cursor.rowcount > 0


async def set_presence(db: Database, updates: list[PresenceUpdate]) -> None:
    """Store the presence of many contacts in one transaction."""
    if not updates:
        return
    async with _writing(db), db.transaction() as conn:
        await conn.executemany(
            "UPDATE contacts SET address=?, tls=?, status=?, presence_ts=? WHERE username=?",
            [(u.address, u.tls, u.status, u.presence_ts, u.username) for u in updates],
        )

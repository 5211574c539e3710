"""The directory's SQLite store: users, invites and presence. The only SQL of the directory."""

from __future__ import annotations

import base64
import hashlib
import os

import aiosqlite

from flame.core.encoding import b64e
from flame.core.models import DirectoryEntry, PresenceRecord, UserRecord
from flame.errors import Conflict, Forbidden
from flame.store.db import Database

SCHEMA = "flame.directory.schema"


def new_invite_code() -> str:
    """A one-time code people can type: 24 base32 characters in groups of four."""
    raw = base64.b32encode(os.urandom(15)).decode()
    return "-".join(raw[i : i + 4] for i in range(0, 24, 4))


def _code_hash(code: str) -> bytes:
    normal = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode()).digest()


def _user(r: aiosqlite.Row) -> UserRecord:
    return UserRecord(
        username=r["username"],
        identity_key=b64e(r["identity_key"]),
        x25519_key=b64e(r["x25519_key"]),
        x25519_sig=b64e(r["x25519_sig"]),
        enrolled_at=r["enrolled_at"],
    )


async def create_invite(db: Database, username: str, *, rekey: bool, now: int, ttl_s: int) -> str:
    code = new_invite_code()
    await db.execute(
        "INSERT INTO invites (code_hash, username, rekey, created_at, expires_at)"
        " VALUES (?,?,?,?,?)",
        (_code_hash(code), username, int(rekey), now, now + ttl_s),
    )
    return code


async def enroll(
    db: Database,
    user: UserRecord,
    keys: tuple[bytes, bytes, bytes],
    invite: str | None,
    *,
    open_registration: bool,
    now: int,
) -> None:
    """Bind a username to keys. With an invite, the code is spent in the same transaction."""
    identity_key, x25519_key, x25519_sig = keys
    async with db.transaction() as conn:
        async with conn.execute("SELECT 1 FROM users WHERE username=?", (user.username,)) as cur:
            exists = await cur.fetchone() is not None
        rekey = False
        if invite is not None:
            async with conn.execute(
                "SELECT * FROM invites WHERE code_hash=?", (_code_hash(invite),)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise Forbidden("This invite code is not valid.", code="bad_invite")
            if row["used_at"] is not None:
                raise Forbidden("This invite code was already used.", code="invite_used")
            if row["expires_at"] < now:
                raise Forbidden(
                    "This invite code has expired; ask for a new one.", code="invite_expired"
                )
            if row["username"] != user.username:
                raise Forbidden(
                    f"This invite code is for another username, not {user.username!r}.",
                    code="bad_invite",
                )
            rekey = bool(row["rekey"])
            await conn.execute(
                "UPDATE invites SET used_at=? WHERE code_hash=?", (now, _code_hash(invite))
            )
        elif not open_registration:
            raise Forbidden(
                "This directory enrolls users by invite only; ask for an invite code.",
                code="invite_required",
            )
        if exists and not rekey:
            raise Conflict(f"The username {user.username!r} is taken.", code="username_taken")
        await conn.execute(
            "INSERT INTO users (username, identity_key, x25519_key, x25519_sig, enrolled_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT (username) DO UPDATE SET"
            " identity_key=excluded.identity_key, x25519_key=excluded.x25519_key,"
            " x25519_sig=excluded.x25519_sig, enrolled_at=excluded.enrolled_at",
            (user.username, identity_key, x25519_key, x25519_sig, now),
        )
        await conn.execute("DELETE FROM presence WHERE username=?", (user.username,))


async def identity_key_of(db: Database, username: str) -> bytes | None:
    row = await db.fetchone("SELECT identity_key FROM users WHERE username=?", (username,))
    return None if row is None else bytes(row["identity_key"])


async def put_presence(db: Database, record: PresenceRecord, expires_at: float) -> None:
    await db.execute(
        "INSERT INTO presence (username, record, expires_at) VALUES (?,?,?)"
        " ON CONFLICT (username) DO UPDATE SET record=excluded.record,"
        " expires_at=excluded.expires_at",
        (record.username, record.model_dump_json(), expires_at),
    )


async def delete_presence(db: Database, username: str) -> None:
    await db.execute("DELETE FROM presence WHERE username=?", (username,))


async def entries(db: Database, now: float, username: str | None = None) -> list[DirectoryEntry]:
    """Users with their presence; an expired report counts as none."""
    sql = (
        "SELECT u.*, p.record, p.expires_at FROM users u"
        " LEFT JOIN presence p ON p.username = u.username"
    )
    params: tuple[object, ...] = ()
    if username is not None:
        sql += " WHERE u.username=?"
        params = (username,)
    rows = await db.fetchall(sql + " ORDER BY u.username", params)
    result = []
    for r in rows:
        presence = None
        if r["record"] is not None and r["expires_at"] > now:
            presence = PresenceRecord.model_validate_json(r["record"])
        result.append(DirectoryEntry(user=_user(r), presence=presence))
    return result


async def list_users(db: Database) -> list[UserRecord]:
    return [_user(r) for r in await db.fetchall("SELECT * FROM users ORDER BY username")]

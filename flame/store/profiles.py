"""Profiles: this user's own and contacts' verified ones (the only SQL for them)."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from flame.core.encoding import b64e
from flame.core.models import Profile
from flame.store.db import Database, from_row, in_marks
from flame.store.messages import HIDDEN_KINDS


@dataclass(frozen=True, slots=True)
class StoredProfile:
    username: str
    display_name: str
    position: str
    location: str
    bio: str
    avatar: bytes | None
    ts: int
    sig: str
    stored_at: float

    def record(self) -> Profile:
        """The signed record as it was received (the fields are stored exactly)."""
        return Profile(
            username=self.username,
            display_name=self.display_name,
            position=self.position,
            location=self.location,
            bio=self.bio,
            avatar=None if self.avatar is None else b64e(self.avatar),
            ts=self.ts,
            sig=self.sig,
        )


def _stored(r: aiosqlite.Row) -> StoredProfile:
    return from_row(StoredProfile, r, avatar=None if r["avatar"] is None else bytes(r["avatar"]))


async def get_profile(db: Database, username: str) -> StoredProfile | None:
    row = await db.fetchone("SELECT * FROM profiles WHERE username=?", (username,))
    return None if row is None else _stored(row)


async def profiles_of(db: Database, usernames: list[str]) -> dict[str, StoredProfile]:
    rows = await db.fetch_in("SELECT * FROM profiles WHERE username IN ({})", usernames)
    return {row["username"]: _stored(row) for row in rows}


async def put_profile(db: Database, profile: Profile, now: float) -> bool:
    """Keep `profile` (already verified) unless the one held is as new or newer. True: stored."""
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT ts FROM profiles WHERE username=?", (profile.username,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None and row["ts"] >= profile.ts:
            await conn.execute(
                "UPDATE profiles SET stored_at=? WHERE username=? AND ts=?",
                (now, profile.username, profile.ts),
            )
            return False
        await conn.execute(
            "INSERT INTO profiles (username, display_name, position, location, bio, avatar, ts,"
            " sig, stored_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (username) DO UPDATE SET"
            " display_name=excluded.display_name, position=excluded.position,"
            " location=excluded.location, bio=excluded.bio, avatar=excluded.avatar,"
            " ts=excluded.ts, sig=excluded.sig, stored_at=excluded.stored_at",
            (
                profile.username,
                profile.display_name,
                profile.position,
                profile.location,
                profile.bio,
                profile.avatar_bytes(),
                profile.ts,
                profile.sig,
                now,
            ),
        )
        return True


async def mark_checked(db: Database, username: str, now: float) -> None:
    """A fetch found nothing newer: the cached profile counts as fresh from now."""
    await db.execute("UPDATE profiles SET stored_at=? WHERE username=?", (now, username))


async def stale_contacts(db: Database, older_than: float, limit: int) -> list[str]:
    """Online contacts whose profile is missing or was last checked before `older_than`."""
    rows = await db.fetchall(
        "SELECT c.username FROM contacts c LEFT JOIN profiles p ON p.username = c.username"
        " WHERE c.status != 'offline' AND c.address IS NOT NULL"
        " AND c.pending_identity_key IS NULL"
        " AND c.username NOT IN (SELECT username FROM blocks)"
        " AND (p.stored_at IS NULL OR p.stored_at < ?) ORDER BY p.stored_at IS NOT NULL, c.username"
        " LIMIT ?",
        (older_than, limit),
    )
    return [row["username"] for row in rows]


async def drop_pending_updates(db: Database, peers: list[str]) -> int:
    """Forget profile updates still queued for `peers`: a newer one replaces them."""
    if not peers:
        return 0
    marks = in_marks(peers)
    kinds = in_marks(HIDDEN_KINDS)
    params = (*peers, "profile_update")
    async with db.transaction() as conn:
        async with conn.execute(
            f"SELECT o.message_id FROM outbox o JOIN messages m ON m.id = o.message_id"
            f" WHERE o.peer IN ({marks}) AND m.kind = ?",
            params,
        ) as cursor:
            ids = [row["message_id"] for row in await cursor.fetchall()]
        if ids:
            id_marks = in_marks(ids)
            await conn.execute(f"DELETE FROM outbox WHERE message_id IN ({id_marks})", ids)
            await conn.execute(
                f"DELETE FROM messages WHERE id IN ({id_marks}) AND kind IN ({kinds})",
                (*ids, *HIDDEN_KINDS),
            )
    return len(ids)

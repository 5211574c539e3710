"""Contacts kept in memory once read (store/contacts.py): every write of the table is seen by the
next read, whichever write it was."""

from __future__ import annotations

from flame.store import contacts as store
from flame.store.db import Database

KEY, NEW_KEY, X, NEW_X, SIG = b"i" * 32, b"j" * 32, b"x" * 32, b"y" * 32, b"s" * 64


async def test_each_write_of_a_contact_is_what_the_next_read_gives(db: Database) -> None:
    assert await store.get_contact(db, "bob") is None  # remembered as missing ...
    assert (await store.offer_keys(db, "bob", KEY, X, SIG, 1.0)).is_new
    bob = await store.get_contact(db, "bob")  # ... and found once pinned
    assert bob is not None and bob.identity_key == KEY and bob.address is None

    await store.set_presence(
        db, [store.PresenceUpdate("bob", "https://127.0.0.1:9", b"t" * 32, "away", 5)]
    )
    bob = await store.get_contact(db, "bob")
    assert bob is not None and (bob.address, bob.status, bob.presence_ts) == (
        "https://127.0.0.1:9",
        "away",
        5,
    )

    assert await store.set_verified(db, "bob", True)
    assert (bob := await store.get_contact(db, "bob")) is not None and bob.is_verified

    assert (await store.offer_keys(db, "bob", NEW_KEY, NEW_X, SIG, 2.0)).is_key_change
    bob = await store.get_contact(db, "bob")
    assert bob is not None and bob.key_changed and not bob.is_verified

    assert await store.accept_pending_key(db, "bob", 3.0)
    bob = await store.get_contact(db, "bob")
    assert bob is not None and (bob.identity_key, bob.x25519_key) == (NEW_KEY, NEW_X)
    assert not bob.key_changed

"""Trust on first use: a contact's changed identity key is refused and reported, never used
silently, until the user accepts it."""

from __future__ import annotations

import time

from tests.cluster import Cluster


async def test_a_key_change_is_refused_and_reported_until_accepted(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    feed = await alice.websocket()
    await alice.wait_status(feed, "bob", "online")
    status, contacts = await alice.get("/ui/api/contacts")
    before = next(c for c in contacts["contacts"] if c["username"] == "bob")
    assert before["key_changed"] is False and before["verified"] is False
    # alice compared the safety number with bob: the mark belongs to the key pinned now.
    status, verified = await alice.post("/ui/api/contacts/bob/verify", {"verified": True})
    assert status == 200 and verified["verified"] is True
    _, profile = await alice.get("/ui/api/profiles/bob")
    assert profile["verified"] is True
    for path, body, code in (
        ("/ui/api/contacts/nobody/verify", {"verified": True}, "unknown_recipient"),
        ("/ui/api/contacts/bob/verify", {"verified": "yes"}, "bad_request"),
    ):
        status, refused = await alice.post(path, body)
        assert 400 <= status < 500 and refused["error"] == code, refused

    # bob's laptop is replaced: the admin issues a rekey invite and bob enrolls new keys.
    await trio.stop_daemon("bob")
    assert trio.directory is not None and trio.directory.store is not None
    code = await trio.directory.store.create_invite(
        "bob", rekey=True, now=int(time.time()), ttl_s=600
    )
    settings = await trio.enroll("bob", invite=code, folder="bob-new-laptop")
    new_bob = await trio.start_daemon("bob", settings=settings)

    event = await feed.wait_for(lambda e: e["type"] == "key_change")
    assert event["username"] == "bob"
    _, contacts = await alice.get("/ui/api/contacts")
    changed = next(c for c in contacts["contacts"] if c["username"] == "bob")
    assert changed["key_changed"] is True
    assert changed["fingerprint"] == before["fingerprint"]  # still the pinned key in use
    assert changed["verified"] is False  # a key change undoes the verified mark

    status, reply = await alice.post("/ui/api/conversations/bob/messages", {"text": "hi"})
    assert (status, reply["error"]) == (409, "key_changed")
    assert "safety number" in reply["message"]

    # The new bob cannot talk to alice either: his requests do not verify with the pinned key.
    new_bob_ui = await trio.ui("bob")
    sent = await new_bob_ui.send("alice", "it's me, new laptop")
    assert sent["state"] == "sending"
    assert not [m for m in await alice.messages("bob") if m["id"] == sent["id"]]

    # Alice compares safety numbers out of band and accepts: the new key is pinned and used.
    status, accepted = await alice.post("/ui/api/contacts/bob/accept-key", {})
    assert status == 200 and accepted["key_changed"] is False
    assert accepted["fingerprint"] != before["fingerprint"]
    assert accepted["verified"] is False  # the new key's safety number is not compared yet
    mine = await alice.send("bob", "welcome back")
    bob_feed = await new_bob_ui.websocket()
    if not [m for m in await new_bob_ui.messages("alice") if m["id"] == mine["id"]]:
        await bob_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["id"] == mine["id"]
        )
    assert new_bob.services is not None
    # bob's message, refused while his key was unaccepted, stayed queued and now arrives.
    if not [m for m in await alice.messages("bob") if m["id"] == sent["id"]]:
        await feed.wait_for(lambda e: e["type"] == "message" and e["message"]["id"] == sent["id"])

"""Groups through the browser's API (docs/UI_API.md, "Groups") on real daemons: create, live
events, "delivered to X of N, read by Y", search, and every refusal a user can cause as a
readable 4xx."""

from __future__ import annotations

from tests.cluster import Cluster


async def test_a_group_through_the_ui_api(trio: Cluster) -> None:
    alice, bob, carol = [await trio.ui(n) for n in ("alice", "bob", "carol")]
    alice_feed, bob_feed = await alice.websocket(), await bob.websocket()
    status, reply = await alice.post(
        "/ui/api/groups", {"name": "Leadership", "members": ["bob", "carol"], "picture": None}
    )
    assert status == 201, reply
    group = reply["group"]
    gid = group["id"]
    assert group["members"] == ["alice", "bob", "carol"] and group["admins"] == ["alice"]
    assert group["is_admin"] and group["is_member"]
    seen = await bob_feed.wait_for(lambda e: e["type"] == "group" and e["group"]["id"] == gid)
    assert seen["group"]["members"] == ["alice", "bob", "carol"] and not seen["group"]["is_admin"]
    _, listed = await bob.get("/ui/api/groups")
    assert [g["name"] for g in listed["groups"]] == ["Leadership"]

    status, reply = await alice.post(f"/ui/api/groups/{gid}/messages", {"text": "Q3 numbers"})
    assert status == 201, reply
    sent = reply["message"]
    assert sent["recipients"] == 2 and [c["member"] for c in sent["copies"]] == ["bob", "carol"]
    arrived = await bob_feed.wait_for(lambda e: e["type"] == "group_message")
    assert arrived["message"]["text"] == "Q3 numbers" and arrived["message"]["author"] == "alice"

    # Each member's receipt moves its own copy: "delivered to 2 of 2", then "read by 1".
    # Each copy's states come live, named by the copy's id, as the page follows them: sent (at
    # the member's daemon) and delivered (its receipt), in whichever order they are applied.
    pending = {(c["id"], state) for c in sent["copies"] for state in ("sent", "delivered")}
    while pending:
        event = await alice_feed.wait_for(
            lambda e: e["type"] == "message_state" and (e["id"], e["state"]) in pending
        )
        pending.discard((event["id"], event["state"]))
    _, page = await bob.get(f"/ui/api/groups/{gid}/messages")
    assert [m["text"] for m in page["messages"]] == ["Q3 numbers"]
    assert (await bob.post(f"/ui/api/groups/{gid}/read", {}))[0] == 200
    await alice_feed.wait_for(
        lambda e: e["type"] == "message_state" and e["state"] == "read" and e["peer"] == "bob"
    )
    _, page = await alice.get(f"/ui/api/groups/{gid}/messages")
    (mine,) = page["messages"]
    assert (mine["recipients"], mine["delivered"], mine["read"]) == (2, 2, 1)
    _, found = await carol.get("/ui/api/group-search", {"q": "numbers"})
    assert [m["text"] for m in found["messages"]] == ["Q3 numbers"]

    # Refusals a user can cause, each a readable 4xx.
    status, reply = await alice.post(
        "/ui/api/groups", {"name": "x" * 65, "members": ["bob"], "picture": None}
    )
    assert (status, reply["error"]) == (400, "name_too_long") and "64" in reply["message"]
    status, reply = await alice.post(
        "/ui/api/groups", {"name": "Alone", "members": [], "picture": None}
    )
    assert (status, reply["error"]) == (400, "bad_group_op")
    status, reply = await bob.post(
        f"/ui/api/groups/{gid}/changes", {"op": "add", "members": ["carol"]}
    )
    assert (status, reply["error"]) == (403, "not_admin") and "admin" in reply["message"]
    status, reply = await alice.post(
        f"/ui/api/groups/{gid}/changes", {"op": "rename", "name": "y" * 65}
    )
    assert (status, reply["error"]) == (400, "name_too_long")
    status, reply = await alice.post(f"/ui/api/groups/{gid}/messages", {"text": "  "})
    assert (status, reply["error"]) == (400, "empty_message")
    assert (await alice.get("/ui/api/groups/nope"))[0] == 404

    # Removed: carol's page hears it, and her daemon refuses her writing to the group.
    carol_feed = await carol.websocket()
    status, reply = await alice.post(
        f"/ui/api/groups/{gid}/changes", {"op": "remove", "members": ["carol"]}
    )
    assert status == 200 and reply["group"]["members"] == ["alice", "bob"]
    out = await carol_feed.wait_for(lambda e: e["type"] == "group" and not e["group"]["is_member"])
    assert out["group"]["id"] == gid
    status, reply = await carol.post(f"/ui/api/groups/{gid}/messages", {"text": "still here?"})
    assert (status, reply["error"]) == (409, "left_group")

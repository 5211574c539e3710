"""Replies, edits, deletes, reactions and typing between real daemons (PROTOCOL.md §17), under
version 2 sessions and version 1 alike: what one side does reaches the other's copy, its search
index and its UI; a delete for everyone leaves a tombstone and no text in either database."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import pytest

from flame.config import Settings
from flame.core.actions import TYPING_INTERVAL_S, TYPING_TTL_S
from flame.daemon import Daemon
from tests.cluster import Cluster, Feed, UiClient, eventually, services_of
from tests.e2e.test_relays import FAST_RELAY, held, offline, until_state
from tests.e2e.test_versions import pair as versions_pair
from tests.files_helpers import (
    MIB,
    fetch,
    files_on_disk,
    random_bytes,
    transfer_of,
    wait_state,
)

VERSIONS = [pytest.param(2, id="version-2"), pytest.param(1, id="version-1")]


async def pair(cluster: Cluster, version: int) -> tuple[UiClient, UiClient, Feed, Feed]:
    """alice and bob, both speaking at most `version`, online and watching their feeds."""
    return await versions_pair(cluster, {"max_version": version}, {"max_version": version})


async def act(ui: UiClient, peer: str, message_id: str, action: str, body: Any) -> Any:
    path = f"/ui/api/conversations/{peer}/messages/{urllib.parse.quote(message_id)}/{action}"
    status, answer = await ui.post(path, body)
    assert status == 200, answer
    return answer


def changed(message_id: str, check: Any = lambda m: True) -> Any:
    return lambda e: (
        e["type"] == "message_changed" and e["message"]["id"] == message_id and check(e["message"])
    )


async def arrived(feed: Feed, text: str) -> dict[str, Any]:
    event = await feed.wait_for(lambda e: e["type"] == "message" and e["message"]["text"] == text)
    return dict(event["message"])


async def search_texts(ui: UiClient, q: str) -> list[str]:
    _, body = await ui.get(f"/ui/api/search?{urllib.parse.urlencode({'q': q})}")
    return [hit["message"]["text"] for hit in body["messages"]]


async def rows_holding(node: Daemon, word: str) -> dict[str, int]:
    """Where the word still is in a daemon's database: every table that may keep a message's
    text, and the search index's own vocabulary (not only its lookups)."""
    db = services_of(node).ctx.db
    like = f"%{word}%"
    found = {}
    for table, column in (
        ("messages", "body"),
        ("message_versions", "text"),
        ("ratchet_inbox", "inner"),
        ("outbox", "inner"),
    ):
        row = await db.fetchone(f"SELECT count(*) FROM {table} WHERE {column} LIKE ?", (like,))
        assert row is not None
        found[table] = int(row[0])
    await db.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, messages_fts, row)"
    )
    row = await db.fetchone("SELECT count(*) FROM temp.vocab WHERE term = ?", (word.lower(),))
    assert row is not None
    found["messages_fts"] = int(row[0])
    return found


async def versions_of(node: Daemon, kind: str) -> set[int]:
    """The protocol versions the incoming messages of `kind` arrived under (§14.2)."""
    db = services_of(node).ctx.db
    rows = await db.fetchall(
        "SELECT DISTINCT version FROM messages WHERE kind = ? AND direction = 'in'", (kind,)
    )
    return {row["version"] for row in rows}


NOWHERE = {
    "messages": 0,
    "message_versions": 0,
    "ratchet_inbox": 0,
    "outbox": 0,
    "messages_fts": 0,
}


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_reply_quotes_and_an_edit_reaches_the_other_copy_and_its_index(
    cluster: Cluster, version: int
) -> None:
    alice, bob, a_feed, b_feed = await pair(cluster, version)
    sent = await alice.send("bob", "Lunch at noon near the harbour?")
    original = await arrived(b_feed, "Lunch at noon near the harbour?")
    status, body = await bob.post(
        "/ui/api/conversations/alice/messages", {"text": "Yes!", "reply_to": original["id"]}
    )
    assert status == 201, body
    quote = body["message"]["reply_to"]
    assert quote == {
        "id": sent["id"],
        "author": "alice",
        "kind": "text",
        "text": "Lunch at noon near the harbour?",
        "state": "shown",
    }
    reply = await arrived(a_feed, "Yes!")
    assert reply["reply_to"]["text"] == "Lunch at noon near the harbour?"  # alice's own copy
    assert reply["protocol_version"] == version

    edited = await act(alice, "bob", sent["id"], "edit", {"text": "Lunch at one near the quay?"})
    assert edited["message"]["edited_at"] is not None
    event = await b_feed.wait_for(changed(sent["id"]))
    assert event["message"]["text"] == "Lunch at one near the quay?"
    assert event["message"]["edited_at"] == edited["message"]["edited_at"]
    for ui in (alice, bob):  # both indexes follow the text shown; the old words are gone
        assert await search_texts(ui, "quay") == ["Lunch at one near the quay?"]
        assert await search_texts(ui, "harbour") == []
    path = f"/ui/api/conversations/alice/messages/{urllib.parse.quote(sent['id'])}/history"
    _, history = await bob.get(path)
    assert [v["text"] for v in history["versions"]] == [
        "Lunch at noon near the harbour?",
        "Lunch at one near the quay?",
    ]
    _, page = await bob.get("/ui/api/conversations/alice/messages")
    shown = {m["id"]: m for m in page["messages"]}
    assert shown[reply["id"]]["reply_to"]["text"] == "Lunch at one near the quay?"  # quotes follow
    assert await versions_of(cluster.daemons["bob"], "edit") == {version}


@pytest.mark.parametrize("version", VERSIONS)
async def test_reactions_toggle_and_count_on_both_sides(cluster: Cluster, version: int) -> None:
    alice, bob, a_feed, b_feed = await pair(cluster, version)
    sent = await alice.send("bob", "Board meeting moved to Friday")
    await arrived(b_feed, "Board meeting moved to Friday")
    await act(bob, "alice", sent["id"], "reactions", {"emoji": "👍", "on": True})
    await act(alice, "bob", sent["id"], "reactions", {"emoji": "👍", "on": True})
    await act(bob, "alice", sent["id"], "reactions", {"emoji": "🎉", "on": True})
    both = [
        {"emoji": "👍", "count": 2, "people": ["bob", "alice"]},
        {"emoji": "🎉", "count": 1, "people": ["bob"]},
    ]
    await a_feed.wait_for(changed(sent["id"], lambda m: m["reactions"] == both))
    await b_feed.wait_for(changed(sent["id"], lambda m: m["reactions"][0]["count"] == 2))
    await act(bob, "alice", sent["id"], "reactions", {"emoji": "👍", "on": False})
    after = [
        {"emoji": "👍", "count": 1, "people": ["alice"]},
        {"emoji": "🎉", "count": 1, "people": ["bob"]},
    ]
    await a_feed.wait_for(changed(sent["id"], lambda m: m["reactions"] == after))
    _, page = await bob.get("/ui/api/conversations/alice/messages")
    assert page["messages"][-1]["reactions"] == after
    assert await versions_of(cluster.daemons["alice"], "reaction") == {version}


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_delete_for_everyone_leaves_a_tombstone_and_no_text_in_either_database(
    cluster: Cluster, version: int
) -> None:
    alice, bob, a_feed, b_feed = await pair(cluster, version)
    sent = await alice.send("bob", "The password is Marzipan77")
    await arrived(b_feed, "The password is Marzipan77")
    await act(alice, "bob", sent["id"], "edit", {"text": "The password is Marzipan77 (or Nougat)"})
    await b_feed.wait_for(changed(sent["id"]))
    await act(bob, "alice", sent["id"], "reactions", {"emoji": "😮", "on": True})
    await a_feed.wait_for(changed(sent["id"], lambda m: m["reactions"] != []))

    before = await rows_holding(cluster.daemons["bob"], "Nougat")  # the check finds it there
    assert before["messages"] == before["message_versions"] == before["messages_fts"] == 1
    assert before["ratchet_inbox"] == (1 if version == 2 else 0)  # the edit's opened copy
    gone = await act(alice, "bob", sent["id"], "delete", {"for": "everyone"})
    tombstone = {"deleted": True, "text": "", "reactions": [], "edited_at": None}
    assert {k: gone["message"][k] for k in tombstone} == tombstone
    event = await b_feed.wait_for(changed(sent["id"], lambda m: m["deleted"]))
    assert {k: event["message"][k] for k in tombstone} == tombstone
    for ui, peer in ((alice, "bob"), (bob, "alice")):
        _, page = await ui.get(f"/ui/api/conversations/{peer}/messages")
        assert [(m["id"], m["deleted"], m["text"]) for m in page["messages"]] == [
            (sent["id"], True, "")
        ]
        assert await search_texts(ui, "Marzipan77") == []
        assert await search_texts(ui, "Nougat") == []
    for name in ("alice", "bob"):
        for word in ("Marzipan77", "Nougat"):
            assert await rows_holding(cluster.daemons[name], word) == NOWHERE, (name, word)
    assert await versions_of(cluster.daemons["bob"], "delete") == {version}


async def test_what_is_written_during_a_block_stays_unseen_but_a_delete_still_takes_back(
    cluster: Cluster,
) -> None:
    """PROTOCOL.md §12.4 and §17.3: bob blocks alice, who reacts to one of her messages and
    deletes the other for everyone; once he unblocks her, her reaction is never shown (written
    while blocked) but her delete takes back what she wrote before the block."""
    alice, bob, _, b_feed = await pair(cluster, 2)
    first = await alice.send("bob", "Call me about the Otter deal")
    second = await alice.send("bob", "And the budget")
    await arrived(b_feed, "Call me about the Otter deal")
    await arrived(b_feed, "And the budget")
    status, view = await bob.post("/ui/api/blocks", {"username": "alice"})
    assert status == 200 and view["blocked"] is True
    await act(alice, "bob", second["id"], "reactions", {"emoji": "👍", "on": True})
    await act(alice, "bob", first["id"], "delete", {"for": "everyone"})
    status, view = await bob.delete("/ui/api/blocks/alice")
    assert status == 200 and view["blocked"] is False
    await b_feed.wait_for(changed(first["id"], lambda m: m["deleted"]))
    alice_delivery = services_of(cluster.daemons["alice"]).delivery
    await eventually(alice_delivery.pending, equals=0)  # the reaction was answered too
    _, page = await bob.get("/ui/api/conversations/alice/messages")
    assert [(m["id"], m["deleted"], m["reactions"]) for m in page["messages"]] == [
        (first["id"], True, []),
        (second["id"], False, []),
    ]
    bob_node = cluster.daemons["bob"]
    assert await rows_holding(bob_node, "Otter") == NOWHERE
    row = await services_of(bob_node).ctx.db.fetchone("SELECT count(*) FROM reactions")
    assert row is not None and row[0] == 0


async def test_a_delete_for_me_stays_here(cluster: Cluster) -> None:
    alice, bob, _, b_feed = await pair(cluster, 2)
    sent = await alice.send("bob", "only bob forgets this")
    got = await arrived(b_feed, "only bob forgets this")
    answer = await act(bob, "alice", got["id"], "delete", {"for": "me"})
    assert answer == {"removed": got["id"]}
    await b_feed.wait_for(lambda e: e["type"] == "message_removed" and e["id"] == got["id"])
    _, page = await bob.get("/ui/api/conversations/alice/messages")
    assert page["messages"] == []
    assert await rows_holding(cluster.daemons["bob"], "forgets") == NOWHERE
    _, mine = await alice.get("/ui/api/conversations/bob/messages")
    assert [m["text"] for m in mine["messages"]] == ["only bob forgets this"]
    assert mine["messages"][0]["id"] == sent["id"]


async def typing(ui: UiClient, on: bool) -> tuple[bool, float, float]:
    """Whether the notice went, and when the request started and ended (epoch s)."""
    started = time.time()
    status, body = await ui.post("/ui/api/conversations/bob/typing", {"typing": on})
    assert status == 200, body
    return bool(body["sent"]), started, time.time()


@pytest.mark.parametrize("version", VERSIONS)
async def test_typing_reaches_an_online_contact_and_is_paced(
    cluster: Cluster, version: int
) -> None:
    """The pace (core/actions.typing_due, tests/core/test_actions.py) is checked here only where
    the requests' own times decide it, so a slow machine cannot make the test wrong."""
    alice, _, _, b_feed = await pair(cluster, version)
    sent, first, _ = await typing(alice, True)
    assert sent
    event = await b_feed.wait_for(lambda e: e["type"] == "typing")
    assert event == {"type": "typing", "username": "alice", "typing": True, "expires_in_s": 6.0}
    # The daemon measures from the first notice to now: at most `done - first` here.
    again, _, done = await typing(alice, True)
    if done - first < TYPING_INTERVAL_S:  # within 3 s: not again (PROTOCOL.md §17.5)
        assert not again
    stopped, _, done = await typing(alice, False)
    if done - first <= TYPING_TTL_S:  # still shown there: taken back
        assert stopped
    if stopped:
        event = await b_feed.wait_for(lambda e: e["type"] == "typing" and not e["typing"])
        assert event["expires_in_s"] == 0
    nothing, _, _ = await typing(alice, False)
    assert not nothing  # nothing was said to take back
    # Nothing of it was queued, relayed or stored.
    _, diagnostics = await alice.get("/ui/api/diagnostics")
    assert diagnostics["outbox"] == 0
    db = services_of(cluster.daemons["bob"]).ctx.db
    row = await db.fetchone("SELECT count(*) FROM messages")
    assert row is not None and row[0] == 0
    # Under version 2 the notices went through the session: messages after them still open.
    await alice.send("bob", "after the typing")
    await arrived(b_feed, "after the typing")


async def test_no_typing_notice_while_busy_or_appearing_offline(cluster: Cluster) -> None:
    alice, _, _, _ = await pair(cluster, 2)
    for status in ("busy", "offline"):
        code, _ = await alice.put("/ui/api/status", {"status": status})
        assert code == 200
        _, body = await alice.post("/ui/api/conversations/bob/typing", {"typing": True})
        assert body == {"sent": False}, status
    code, _ = await alice.put("/ui/api/status", {"status": "online"})
    _, body = await alice.post("/ui/api/conversations/bob/typing", {"typing": True})
    assert body == {"sent": True}


async def four_with_bob_away(cluster: Cluster, version: int) -> tuple[UiClient, Feed, Settings]:
    """Four users speaking at most `version`, with fast relays; bob goes offline. alice's UI,
    its feed, and bob's settings (to bring him back on the same version)."""
    await cluster.start_directory()
    relays: dict[str, Any] = dict(FAST_RELAY)
    settings = {}
    for name in ("alice", "bob", "carol", "dave"):
        settings[name] = await cluster.enroll(name, **relays)
        settings[name].security.max_version = version
        await cluster.start_daemon(name, settings=settings[name])
    alice = await cluster.ui("alice")
    feed = await alice.websocket()
    await offline(cluster, alice, feed, "bob")
    return alice, feed, settings["bob"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_actions_wait_in_the_outbox_go_through_relays_and_arrive_once(
    cluster: Cluster, version: int
) -> None:
    """bob is away: alice's edit, reaction and delete wait in her outbox and with relays, and
    reach him once when he is back, under the version they speak; a message deleted before it
    ever left is never sent."""
    alice, feed, bob_settings = await four_with_bob_away(cluster, version)
    _, before = await alice.get("/ui/api/diagnostics")
    first = await alice.send("bob", "agenda: budget")
    second = await alice.send("bob", "and the Quokka merger")
    await act(alice, "bob", first["id"], "edit", {"text": "agenda: budget, hiring"})
    await act(alice, "bob", first["id"], "reactions", {"emoji": "🔥", "on": True})
    await act(alice, "bob", second["id"], "delete", {"for": "everyone"})  # never leaves
    await until_state(feed, first["id"], "relayed")
    relays = [cluster.daemons[n] for n in ("carol", "dave")]

    async def holding() -> list[int]:
        return [await held(r) for r in relays]

    await eventually(holding, equals=[4, 4])  # the text, its edit and reaction, the delete
    bob_node = await cluster.start_daemon("bob", settings=bob_settings)
    await until_state(feed, first["id"], "delivered")
    bob = await cluster.ui("bob")

    async def outbox() -> int:
        return int((await alice.get_json("/ui/api/diagnostics"))["outbox"])

    await eventually(outbox, equals=before["outbox"])  # every action's receipt came back
    _, page = await bob.get("/ui/api/conversations/alice/messages")
    assert [(m["text"], m["reactions"]) for m in page["messages"]] == [
        ("agenda: budget, hiring", [{"emoji": "🔥", "count": 1, "people": ["alice"]}])
    ]
    db = services_of(bob_node).ctx.db
    kinds = await db.fetchall(
        "SELECT kind, count(*) AS n FROM messages GROUP BY kind ORDER BY kind"
    )
    assert {row["kind"]: row["n"] for row in kinds} == {
        "delete": 1,
        "edit": 1,
        "reaction": 1,
        "text": 1,
        "tombstone": 1,  # the message deleted before it came: a copy would be a duplicate
    }
    for kind in ("text", "edit", "reaction", "delete"):  # each under the version they speak
        assert await versions_of(bob_node, kind) == {version}, kind
    assert await rows_holding(bob_node, "Quokka") == NOWHERE
    assert await rows_holding(cluster.daemons["alice"], "Quokka") == NOWHERE


@pytest.mark.parametrize(
    "size", [pytest.param(200 * 1024, id="inline"), pytest.param(MIB + 7, id="streamed")]
)
async def test_a_file_deleted_for_everyone_is_gone_from_both_disks(
    cluster: Cluster, size: int
) -> None:
    """Its bytes, its name and its caption (PROTOCOL.md §11.2) leave both sides."""
    alice, bob, _, b_feed = await pair(cluster, 2)
    data = random_bytes(size, seed=5)
    caption = "Walrus figures for the board"
    offer = await alice.send_file("bob", "Quarterly-Forecast.xlsx", data, caption=caption)
    transfer_id = offer["file"]["transfer_id"]
    await wait_state(b_feed, transfer_id, "complete")
    nodes = [cluster.daemons[name] for name in ("alice", "bob")]
    assert all(files_on_disk(node) for node in nodes)
    for node in nodes:  # the caption is in each copy and each index before the delete
        found = await rows_holding(node, "Walrus")
        assert found["messages"] == found["messages_fts"] == 1
    gone = await act(alice, "bob", offer["id"], "delete", {"for": "everyone"})
    assert gone["message"]["deleted"] is True and "file" not in gone["message"]
    await b_feed.wait_for(changed(offer["id"], lambda m: m["deleted"]))
    for node, peer, direction in ((nodes[0], "bob", "out"), (nodes[1], "alice", "in")):
        assert files_on_disk(node) == []
        transfer = await transfer_of(node, peer, direction, transfer_id)
        assert (transfer.name, transfer.state, transfer.file_key) == ("", "cancelled", bytes(32))
        assert transfer.caption == ""
        assert await rows_holding(node, "Forecast") == NOWHERE
        assert await rows_holding(node, "Walrus") == NOWHERE
    status, _ = await fetch(bob, "alice", transfer_id)
    assert status == 404


async def test_a_refused_action_comes_back_as_action_failed_with_the_reason(
    cluster: Cluster,
) -> None:
    """bob's daemon no longer holds the message (its database was restored from before it, say):
    alice's reaction to it is refused for good, and her UI is told which message and why."""
    alice, _, a_feed, b_feed = await pair(cluster, 2)
    sent = await alice.send("bob", "Did you get the contract?")
    await arrived(b_feed, "Did you get the contract?")
    bob_db = services_of(cluster.daemons["bob"]).ctx.db
    await bob_db.execute("DELETE FROM messages WHERE id = ?", (sent["id"],))
    await act(alice, "bob", sent["id"], "reactions", {"emoji": "👍", "on": True})
    event = await a_feed.wait_for(lambda e: e["type"] == "action_failed")
    assert (event["peer"], event["target"], event["kind"]) == ("bob", sent["id"], "reaction")
    assert event["error"] == (
        "bob's daemon refused it: There is no such message in this conversation."
    )
    row = await bob_db.fetchone("SELECT count(*) FROM reactions")
    assert row is not None and row[0] == 0  # nothing of it was stored

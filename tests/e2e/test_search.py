"""Search: one box over people and messages, local only; filters by person and date; newest first
or by relevance; any string a person can type is safe; a hit opens the page around it."""

from __future__ import annotations

import urllib.parse
from typing import Any

from hypothesis import strategies as st

from tests.cluster import Cluster, UiClient
from tests.e2e.test_hostile_input import samples
from tests.social import online_for

HOSTILE = [
    '"',
    '""',
    '"unbalanced',
    "budget*",
    "*",
    "**",
    "b*",
    "NEAR(budget review)",
    "NEAR(budget review, 2)",
    "budget AND",
    "OR review",
    "NOT budget",
    "budget NOT",
    "(((",
    ")",
    "budget) OR (review",
    "search_text:budget",
    "messages_fts:budget",
    "^budget",
    "-budget",
    "+budget",
    "{search_text}: budget",
    "budget'; DROP TABLE messages; --",
    "\x00",
    "bud\x00get",
    "\u202ebudget",
    "🔥",
    "rank:1",
    "bm25(messages_fts)",
    "\\",
    "%_",
    " " * 200,
]


async def search(ui: UiClient, q: str, **params: Any) -> dict[str, Any]:
    query = urllib.parse.urlencode({"q": q, **params})
    status, body = await ui.get(f"/ui/api/search?{query}")
    assert status == 200, body
    return dict(body)


def texts(result: dict[str, Any]) -> list[str]:
    return [hit["message"]["text"] for hit in result["messages"]]


async def test_search_finds_messages_both_ways_and_people(trio: Cluster) -> None:
    await online_for(trio, "bob", "alice", "carol")
    await online_for(trio, "carol", "bob")
    alice, bob, carol = await trio.ui("alice"), await trio.ui("bob"), await trio.ui("carol")
    bob_feed = await bob.websocket()
    await carol.put(
        "/ui/api/profile",
        {"display_name": "Carol Danvers", "position": "Head of Legal", "location": "Zürich"},
    )
    await bob_feed.wait_for(lambda e: e["type"] == "profile")
    await alice.send("bob", "The budget review is on Thursday")
    await bob.send("alice", "I will bring the BUDGET numbers")
    await bob.send("carol", "Réunion à Zürich demain")
    await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["direction"] == "in")

    found = await search(bob, "budget")
    assert sorted(texts(found)) == [
        "I will bring the BUDGET numbers",
        "The budget review is on Thursday",
    ]
    assert {hit["message"]["direction"] for hit in found["messages"]} == {"in", "out"}
    for hit in found["messages"]:
        marked = [part["text"] for part in hit["snippet"] if part["hit"]]
        assert [m.lower() for m in marked] == ["budget"]
        assert "".join(part["text"] for part in hit["snippet"]) == hit["message"]["text"]

    assert texts(await search(bob, "reunion zurich")) == ["Réunion à Zürich demain"]  # no accents
    assert texts(await search(bob, '"numbers budget"')) == []  # a phrase keeps its order
    assert texts(await search(bob, '"budget review"')) == ["The budget review is on Thursday"]
    assert texts(await search(bob, "thurs*")) == ["The budget review is on Thursday"]
    assert texts(await search(bob, "budget missing")) == []

    people = await search(bob, "legal")
    assert [p["username"] for p in people["people"]] == ["carol"]
    assert people["people"][0]["display_name"] == "Carol Danvers"
    assert people["people"][0]["status"] == "online"
    assert [p["username"] for p in (await search(bob, "danv"))["people"]] == ["carol"]
    assert [p["username"] for p in (await search(bob, "ali"))["people"]] == ["alice"]  # no profile
    assert (await search(bob, ""))["messages"] == []


async def test_filters_by_person_and_date_and_both_orders(trio: Cluster) -> None:
    await online_for(trio, "alice", "bob", "carol")
    alice = await trio.ui("alice")
    sent = []
    for peer, text in [
        ("bob", "quarterly plan draft"),
        ("carol", "plan for the launch"),
        ("bob", "plan plan plan"),
        ("carol", "the plan is approved, and we can go ahead with everything we discussed"),
        ("bob", "new plan"),
    ]:
        sent.append(await alice.send(peer, text))

    newest = await search(alice, "plan")
    assert texts(newest) == [m["text"] for m in reversed(sent)]  # newest first
    assert texts(await search(alice, "plan", peer="carol")) == [sent[3]["text"], sent[1]["text"]]
    window = {"since": sent[1]["sent_at"], "until": sent[3]["sent_at"]}
    assert texts(await search(alice, "plan", **window)) == [sent[2]["text"], sent[1]["text"]]
    assert texts(await search(alice, "plan", peer="bob", **window)) == [sent[2]["text"]]
    assert len((await search(alice, "plan", limit=2))["messages"]) == 2

    ranked = await search(alice, "plan", order="relevance")
    assert ranked["order"] == "relevance"
    assert sorted(texts(ranked)) == sorted(texts(newest))
    assert texts(ranked)[0] == "plan plan plan"  # the most relevant, not the newest
    assert texts(ranked)[-1] == sent[3]["text"]  # one mention in a long message ranks last


async def test_hostile_search_strings_and_parameters_are_safe(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    await online_for(trio, "alice", "bob")
    await alice.send("bob", "budget review")
    for q in HOSTILE + samples(st.text(max_size=60), 80):
        query = urllib.parse.urlencode({"q": q})
        async with alice.session.get(f"/ui/api/search?{query}") as response:
            body = await response.json()
            assert response.status == 200, (q, body)
            assert isinstance(body["people"], list) and isinstance(body["messages"], list)

    for raw in ("%ED%A0%80", "%FF%FE", "%C0%80", "%00%00"):  # not UTF-8, surrogates, NULs
        async with alice.session.get(f"/ui/api/search?q={raw}") as response:
            assert response.status in (200, 400), await response.text()
    too_long = urllib.parse.urlencode({"q": "x" * 300})
    status, body = await alice.get(f"/ui/api/search?{too_long}")
    assert (status, body["error"]) == (400, "search_too_long")
    for params in (
        {"since": "yesterday"},
        {"until": "nan"},
        {"since": "inf"},
        {"limit": "0"},
        {"limit": "1000"},
        {"limit": "x"},
        {"order": "rank"},
        {"peer": "../../etc"},
        {"peer": "NOBODY"},
    ):
        status, body = await alice.get(
            f"/ui/api/search?{urllib.parse.urlencode({'q': 'a', **params})}"
        )
        assert 400 <= status < 500 and body["error"] and body["message"], (params, body)
    assert texts(await search(alice, "budget")) == ["budget review"]  # still fine


async def test_a_hit_opens_the_page_around_it(trio: Cluster) -> None:
    await online_for(trio, "alice", "bob")
    alice = await trio.ui("alice")
    sent = [await alice.send("bob", f"message number {n}") for n in range(40)]
    target = sent[10]
    [hit] = (await search(alice, '"number 10"'))["messages"]
    assert hit["message"]["id"] == target["id"]

    path = f"/ui/api/conversations/bob/messages/{urllib.parse.quote(target['id'], safe='')}/context"
    status, page = await alice.get(f"{path}?before=5&after=5")
    assert status == 200, page
    assert [m["text"] for m in page["messages"]] == [m["text"] for m in sent[5:16]]
    assert page["target"] == target["id"] and page["has_newer"] is True
    assert page["next_before"] is not None
    older = f"/ui/api/conversations/bob/messages?before={urllib.parse.quote(page['next_before'])}"
    status, earlier = await alice.get(f"{older}&limit=50")
    assert [m["text"] for m in earlier["messages"]] == [m["text"] for m in sent[:5]]

    status, page = await alice.get(f"{path}?before=50&after=50")
    assert len(page["messages"]) == 40 and not page["has_newer"] and page["next_before"] is None
    status, body = await alice.get("/ui/api/conversations/carol/messages/nope/context")
    assert (status, body["error"]) == (404, "no_message")
    status, body = await alice.get(
        f"/ui/api/conversations/carol/messages/{urllib.parse.quote(target['id'], safe='')}/context"
    )
    assert status == 404  # the message exists, but not in that conversation

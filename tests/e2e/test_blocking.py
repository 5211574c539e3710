"""Blocking: a blocked user's requests are refused once their signature verified (403, not told
why) and before any decryption, nobody else can tell who is blocked, nothing they wrote gets in
through someone else, they vanish from the contact list, and unblocking restores everything."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from flame.core.relays import make_ack
from flame.core.signing import sign_request
from flame.daemon import Daemon
from flame.store import messages as message_store
from flame.store import relay as relay_store
from tests.cluster import Cluster, eventually, identity_of, peer_tls, peer_url, services_of
from tests.e2e.test_status import deposit, requests_from
from tests.social import online_for, post_envelopes, sealed, signed_request


def names(contacts: dict[str, object]) -> list[str]:
    listed = contacts["contacts"]
    assert isinstance(listed, list)
    return [c["username"] for c in listed]


async def test_a_blocked_user_is_refused_at_the_edge_before_any_decryption(trio: Cluster) -> None:
    alice, bob, carol = trio.daemons["alice"], trio.daemons["bob"], trio.daemons["carol"]
    await online_for(trio, "bob", "alice")
    alice_ui = await trio.ui("alice")
    status, view = await alice_ui.post("/ui/api/blocks", {"username": "bob"})
    assert status == 200 and view["blocked"] is True
    assert await services_of(alice).blocks.is_blocked("bob")
    assert not await services_of(alice).blocks.is_blocked("carol")

    before = services_of(alice).inbox.decryptions
    for _ in range(3):
        status, reply, _ = await post_envelopes(bob, alice, [sealed(bob, alice, text="let me in")])
        assert status == 403
        assert reply == {"error": "forbidden", "message": "This request was refused."}
    status, reply, _ = await signed_request(bob, alice, "GET", "/api/v1/profile")
    assert (status, reply["error"]) == (403, "forbidden")
    assert services_of(alice).inbox.decryptions == before  # not one envelope was opened

    # The control: carol's envelope is opened (and counted) and stored.
    status, _, _ = await post_envelopes(carol, alice, [sealed(carol, alice, text="hi")])
    assert status == 200 and services_of(alice).inbox.decryptions == before + 1

    # Through bob's own daemon: the message stays queued on his side, as if alice were away.
    bob_ui = await trio.ui("bob")
    sent = await bob_ui.send("alice", "please answer")
    await services_of(bob).delivery.deliver_to_peer("alice")
    row = await services_of(bob).ctx.db.fetchone(
        "SELECT attempts, last_error FROM outbox WHERE message_id=?", (sent["id"],)
    )
    assert row is not None and row["attempts"] >= 1
    assert "refused" in row["last_error"] and "block" not in row["last_error"].lower()
    assert await message_store.count_messages(services_of(alice).ctx.db, "bob") == 0
    assert services_of(alice).inbox.decryptions == before + 1


async def forged_answers(forger: Daemon, target: Daemon, name: str) -> list[tuple[int, Any]]:
    """What `forger` gets for requests to alice (`target`) that name `name` without being able
    to sign as them: signed with the forger's own key, or not signed at all, on every signed
    route (deposits, acknowledgements and streamed chunks included) and on hello."""
    host = f"127.0.0.1:{target.peer_port}"
    url, tls = peer_url(target), peer_tls(target)
    envelope = sealed(forger, target)
    body = json.dumps({"envelopes": [envelope.model_dump()]}).encode()
    expires_at = int(time.time()) + 3600
    deposit = {"deposits": [{"envelope": envelope.model_dump(), "expires_at": expires_at}]}
    ack = make_ack(identity_of(forger), "alice", name, [envelope.id], int(time.time()))
    transfer = "/api/v1/files/AAAAAAAAAAAAAAAAAAAAAA"
    requests = [
        ("POST", "/api/v1/envelopes", body),
        ("GET", "/api/v1/profile", b""),
        ("POST", "/api/v1/relay/deposits", json.dumps(deposit).encode()),
        ("POST", "/api/v1/relay/collect", b'{"limit": 10}'),
        ("POST", "/api/v1/relay/ack", ack.model_dump_json().encode()),
        ("GET", transfer, b""),
        ("PUT", transfer + "/chunks?start=0", b"sealed chunk bytes"),
    ]
    answers = []
    async with aiohttp.ClientSession() as session:
        for method, path, payload in requests:
            headers = sign_request(
                identity_of(forger),
                name,
                "alice",
                method,
                path,
                host,
                payload,
                int(time.time()),
                unsigned_body=method == "PUT",  # streamed chunks (PROTOCOL.md §11.4)
            )
            for sent in (headers, {"Flame-User": name, "Flame-To": "alice"}):
                async with session.request(
                    method, url + path, data=payload or None, headers=sent, ssl=tls
                ) as response:
                    answers.append((response.status, await response.json()))
        path = "/api/v1/hello"
        signed = sign_request(
            identity_of(forger), name, "alice", "GET", path, host, b"", int(time.time())
        )
        for sent in (signed, {"Flame-User": name}):  # the public answer, as to anyone (§7.1)
            async with session.get(url + path, headers=sent, ssl=tls) as r:
                answers.append((r.status, await r.json()))
    return answers


async def test_nobody_who_cannot_sign_as_a_blocked_user_can_tell_they_are_blocked(
    trio: Cluster,
) -> None:
    """carol names bob in requests to alice, before and after alice blocks bob: the answers are
    the same (401 for the signature, hello as to anyone), so the block list cannot be probed."""
    alice, bob, carol = trio.daemons["alice"], trio.daemons["bob"], trio.daemons["carol"]
    await online_for(trio, "alice", "bob", "carol")
    before = await forged_answers(carol, alice, "bob")
    assert {status for status, _ in before[:-2]} == {401}
    assert before[-2:] == [(200, {"locked": False})] * 2
    alice_ui = await trio.ui("alice")
    status, _ = await alice_ui.post("/ui/api/blocks", {"username": "bob"})
    assert status == 200
    assert await forged_answers(carol, alice, "bob") == before
    # bob himself, who can sign, is refused before anything is opened.
    opened = services_of(alice).inbox.decryptions
    status, reply, _ = await post_envelopes(bob, alice, [sealed(bob, alice)])
    assert (status, reply["error"]) == (403, "forbidden")
    assert services_of(alice).inbox.decryptions == opened


async def test_an_envelope_written_by_a_blocked_user_is_not_taken_from_anyone(
    trio: Cluster,
) -> None:
    """What a relay would bring: bob's envelope, delivered by carol's daemon."""
    alice, bob, carol = trio.daemons["alice"], trio.daemons["bob"], trio.daemons["carol"]
    alice_ui = await trio.ui("alice")
    await alice_ui.post("/ui/api/blocks", {"username": "bob"})
    by_bob = sealed(bob, alice, text="through carol")
    status, reply, _ = await post_envelopes(carol, alice, [by_bob, sealed(carol, alice)])
    assert status == 400 and reply["error"] == "rejected"  # the generic refusal, nothing more
    assert [r["status"] for r in reply["results"]] == ["rejected", "stored"]
    assert await message_store.count_messages(services_of(alice).ctx.db, "bob") == 0
    assert await message_store.count_messages(services_of(alice).ctx.db, "carol") == 1


async def test_blocked_people_vanish_unless_asked_for_and_unblocking_restores(
    trio: Cluster,
) -> None:
    await online_for(trio, "alice", "bob", "carol")
    await online_for(trio, "bob", "alice")
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    alice_feed = await alice_ui.websocket()
    await alice_ui.send("bob", "before")

    await alice_ui.post("/ui/api/blocks", {"username": "bob"})
    await alice_feed.wait_for(lambda e: e["type"] == "blocked" and e["username"] == "bob")
    _, contacts = await alice_ui.get("/ui/api/contacts")
    assert names(contacts) == ["carol"]
    _, everyone = await alice_ui.get("/ui/api/contacts?blocked=1")
    assert names(everyone) == ["bob", "carol"]
    assert [c["blocked"] for c in everyone["contacts"]] == [True, False]
    _, listed = await alice_ui.get("/ui/api/blocks")
    assert [b["username"] for b in listed["blocked"]] == ["bob"]
    status, refused = await alice_ui.post(
        "/ui/api/conversations/bob/messages", {"text": "still there?"}
    )
    assert (status, refused["error"]) == (409, "blocked")
    assert [m["text"] for m in await alice_ui.messages("bob")] == ["before"]  # history stays

    sent = await bob_ui.send("alice", "written while blocked")
    await services_of(trio.daemons["bob"]).delivery.deliver_to_peer(
        "alice"
    )  # refused at least once

    status, view = await alice_ui.delete("/ui/api/blocks/bob")
    assert status == 200 and view["blocked"] is False
    _, contacts = await alice_ui.get("/ui/api/contacts")
    assert names(contacts) == ["bob", "carol"]
    event = await alice_feed.wait_for(
        lambda e: e["type"] == "message" and e["message"]["direction"] == "in"
    )
    assert event["message"]["id"] == sent["id"]  # bob's retry gets through now
    await alice_ui.send("bob", "welcome back")

    for body, code in (
        ({"username": "alice"}, "bad_block"),
        ({"username": "Not A Name"}, "unknown_user"),
        ({"name": "bob"}, "bad_request"),
    ):
        status, answer = await alice_ui.post("/ui/api/blocks", body)
        assert 400 <= status < 500 and answer["error"] == code, answer
    status, _ = await alice_ui.delete("/ui/api/blocks/carol")  # not blocked: nothing to undo
    assert status == 200


async def held(node: Daemon) -> int:
    return await relay_store.held_count(services_of(node).ctx.db)


async def test_as_a_relay_alice_takes_deposits_for_bob_as_ever_but_hands_him_nothing(
    trio: Cluster,
) -> None:
    """PROTOCOL.md §12.4: carol's deposit for bob is taken the same before and after alice blocks
    him (a refusal would tell carol), but alice's daemon never hands him anything, and he cannot
    collect it; once she unblocks him, he gets it all."""
    alice, bob, carol = trio.daemons["alice"], trio.daemons["bob"], trio.daemons["carol"]
    await online_for(trio, "alice", "bob", "carol")
    assert alice.supervisor is not None
    await alice.supervisor.stop()  # alice's relay rounds run here, one at a time
    relay = services_of(alice).relay
    await deposit(carol, alice, sealed(carol, bob, text="before the block"))  # stored, asserted
    await services_of(alice).blocks.block("bob")
    await deposit(carol, alice, sealed(carol, bob, text="after the block"))  # the same answer
    assert await held(alice) == 2
    assert await relay.forward_once() == 0  # bob is online, and gets nothing
    assert await held(alice) == 2
    status, reply, _ = await signed_request(
        bob, alice, "POST", "/api/v1/relay/collect", b'{"limit": 10}'
    )
    assert (status, reply["error"]) == (403, "forbidden")
    assert await message_store.count_messages(services_of(bob).ctx.db, "carol") == 0

    await services_of(alice).blocks.unblock("bob")
    assert await relay.forward_once() == 2
    assert await message_store.count_messages(services_of(bob).ctx.db, "carol") == 2


async def test_alice_asks_no_one_she_blocked_to_relay_for_her(cluster: Cluster) -> None:
    """Relaying goes both ways (PROTOCOL.md §12.4, §13.3): blocking carol, alice neither leaves her
    own envelopes with carol nor asks carol for what carol holds for her (carol's hand-overs are
    refused at alice's gate); unblocked, both go."""
    await cluster.start_directory()
    alice = await cluster.add_user("alice", relay_after_s=0.0, relay_retry_s=0.05)
    bob, carol = await cluster.add_user("bob"), await cluster.add_user("carol")
    await online_for(cluster, "alice", "bob", "carol")
    await online_for(cluster, "carol", "alice", "bob")
    await services_of(alice).blocks.block("carol")
    await deposit(bob, carol, sealed(bob, alice, text="kept for alice by carol"))
    alice_ui = await cluster.ui("alice")
    feed = await alice_ui.websocket()
    await cluster.stop_daemon("bob")
    await alice_ui.wait_status(feed, "bob", "offline")
    sent = await alice_ui.send("bob", "for bob, through anyone but carol")
    for node in (alice, carol):  # their rounds run here from now on, one at a time
        assert node.supervisor is not None
        await node.supervisor.stop()
    delivery, relay = services_of(alice).delivery, services_of(alice).relay
    await delivery.deliver_to_peer("bob")  # tried directly (bob is gone): now a relay's turn
    row = await services_of(alice).ctx.db.fetchone(
        "SELECT attempts FROM outbox WHERE message_id=?", (sent["id"],)
    )
    assert row is not None and row["attempts"] >= 1
    assert await delivery.deposit_once() == 0  # carol, the only relay there is, is not asked
    assert await relay.collect_once() == 0  # nor asked for what she holds
    assert await held(carol) == 1  # bob's deposit only: alice's rounds so far took nothing

    await services_of(alice).blocks.unblock("carol")
    await eventually(delivery.deposit_once, equals=1)  # once its retry is due (0.05 s)
    assert await relay.collect_once() == 1
    assert await message_store.count_messages(services_of(alice).ctx.db, "bob") == 2
    assert await held(carol) == 1  # alice's deposit for bob; bob's for her was acknowledged


async def test_a_blocked_user_gets_no_probe_while_the_directory_is_down(trio: Cluster) -> None:
    """Degraded mode asks peers directly whether they are up (PROTOCOL.md §13.5), with a signed
    hello that tells them alice is. alice blocked carol: bob is asked round after round, carol
    never is."""
    bob, carol = trio.daemons["bob"], trio.daemons["carol"]
    await online_for(trio, "alice", "bob", "carol")
    alice_ui = await trio.ui("alice")
    feed = await alice_ui.websocket()
    status, _ = await alice_ui.post("/ui/api/blocks", {"username": "carol"})
    assert status == 200
    carol_before = requests_from(carol, "alice")
    assert trio.directory is not None
    await trio.directory.stop()
    await feed.wait_for(lambda e: e["type"] == "directory" and e["state"] == "degraded")
    asked = requests_from(bob, "alice")

    async def bob_asked_again() -> bool:
        return requests_from(bob, "alice") >= asked + 3  # three probe rounds at least

    await eventually(bob_asked_again, equals=True)
    assert requests_from(carol, "alice") == carol_before

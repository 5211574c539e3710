"""Version 2 on the wire (PROTOCOL.md §14.1): a recording proxy keeps every envelope of a real
conversation; handed both users' long-term keys and their current session state afterwards, the
test reads none of the recorded messages, not even with their Olm accounts (the private one-time
and fallback prekeys). And after a leak of a session state, one round trip
later the leaked state no longer opens what is sent."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import vodozemac

from flame.core import envelope as envelope_rules
from flame.core import ratchet
from flame.core.models import Envelope, Inner, RatchetBody
from flame.errors import RequestError
from flame.store import sessions as session_store
from tests.cluster import Cluster, Feed, UiClient, identity_of, services_of
from tests.e2e.test_wire import RecordingProxy

LINES = ("first, a prekey message", "reply one", "second from alice", "reply two", "third")


def recorded_envelopes(captured: bytes) -> list[Envelope]:
    bodies = re.findall(rb'\{"envelopes":\[.*?\]\}', captured)
    return [Envelope.model_validate(e) for body in bodies for e in json.loads(body)["envelopes"]]


async def talk(
    alice: UiClient, bob: UiClient, a_feed: Feed, b_feed: Feed, lines: tuple[str, ...]
) -> None:
    """Alternate: alice, bob, alice, ... each waiting for the other's message (a ratchet step at
    every change of direction)."""
    for n, line in enumerate(lines):
        sender, receiver, feed = (alice, "bob", b_feed) if n % 2 == 0 else (bob, "alice", a_feed)
        await sender.send(receiver, line)
        await feed.wait_for(text_is(line))


def text_is(line: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "message" and e["message"]["text"] == line


def outer_of(envelope: Envelope, name: str, cluster: Cluster) -> Inner:
    """The outer inner message of an envelope to `name` (its long-term key opens that layer)."""
    identity = identity_of(cluster.daemons[name])
    return envelope_rules.open_envelope(identity.exchange, name, envelope, (1, 2)).inner


def try_open(
    envelope: Envelope,
    name: str,
    cluster: Cluster,
    pickles: dict[str, str],
    account: str | None = None,
) -> str | None:
    """Everything the attacker holds: the recipient's long-term keys, its current session
    pickles (each one tried, whatever session the message names) and, when given, its Olm
    account pickle (the private one-time and fallback prekeys, tried on a prekey message)."""
    identity = identity_of(cluster.daemons[name])
    outer = outer_of(envelope, name, cluster)
    body = outer.body
    assert isinstance(body, RatchetBody)  # version 2 all along
    key = ratchet.pickle_key(identity, name)
    attempts: list[tuple[vodozemac.Session | None, vodozemac.Account | None]] = [
        (ratchet.session_from(pickle, key), None) for pickle in pickles.values()
    ]
    if account is not None and body.type == ratchet.PRE_KEY:
        attempts.append((None, vodozemac.Account.from_pickle(account, key)))
    for session, olm_account in attempts:
        try:
            opened = ratchet.decrypt(session, olm_account, key, body, outer)
        except RequestError:
            continue
        return str(opened.inner.body.model_dump().get("text"))
    return None


async def current_pickles(cluster: Cluster, name: str, peer: str) -> dict[str, str]:
    db = services_of(cluster.daemons[name]).ctx.db
    return {s.session_id: s.pickle for s in await session_store.load_sessions(db, peer)}


async def account_pickle(cluster: Cluster, name: str) -> str:
    state = await session_store.load_account(services_of(cluster.daemons[name]).ctx.db)
    assert state is not None
    return state.pickle


async def start_recorded(cluster: Cluster) -> dict[str, RecordingProxy]:
    """alice and bob behind recording proxies. Plain HTTP, by its setting: the recorder stands
    for whoever sees envelopes (a relay holds them; TLS, §1.3, hides them from the network), and
    the claim is about the envelopes alone."""
    await cluster.start_directory(insecure_plain_http=True)
    proxies = {}
    for name in ("alice", "bob"):
        proxy = RecordingProxy()
        await proxy.start()
        proxies[name] = proxy
        settings = await cluster.enroll(
            name, public_address=f"http://127.0.0.1:{proxy.port}", insecure_plain_http=True
        )
        proxy.target_port = (await cluster.start_daemon(name, settings=settings)).peer_port
    return proxies


async def online_pair(cluster: Cluster) -> tuple[UiClient, UiClient, Feed, Feed]:
    alice, bob = await cluster.ui("alice"), await cluster.ui("bob")
    a_feed, b_feed = await alice.websocket(), await bob.websocket()
    await alice.wait_status(a_feed, "bob", "online")
    await bob.wait_status(b_feed, "alice", "online")
    return alice, bob, a_feed, b_feed


async def test_recorded_messages_stay_unreadable_with_both_users_current_state(
    cluster: Cluster,
) -> None:
    proxies = await start_recorded(cluster)
    try:
        alice, bob, a_feed, b_feed = await online_pair(cluster)
        await talk(alice, bob, a_feed, b_feed, LINES)
        recorded = recorded_envelopes(bytes(proxies["bob"].captured))
        to_bob = [e for e in recorded if e.to == "bob" and e.v == 2]
        to_alice = [
            e for e in recorded_envelopes(bytes(proxies["alice"].captured)) if e.to == "alice"
        ]
        assert len(to_bob) >= 3 and len(to_alice) >= 2  # the texts (and receipts) went as version 2
        state = {
            "bob": await current_pickles(cluster, "bob", "alice"),
            "alice": await current_pickles(cluster, "alice", "bob"),
        }
        assert state["bob"] and state["alice"]
        accounts = {name: await account_pickle(cluster, name) for name in ("alice", "bob")}
        # The session started with a prekey message, which the account would open again if the
        # one-time key it used had been kept.
        first = [outer_of(e, "bob", cluster).body for e in to_bob]
        assert any(isinstance(b, RatchetBody) and b.type == ratchet.PRE_KEY for b in first)
        for envelope in to_bob:
            assert try_open(envelope, "bob", cluster, state["bob"], accounts["bob"]) is None
        for envelope in to_alice:
            assert try_open(envelope, "alice", cluster, state["alice"], accounts["alice"]) is None
    finally:
        await cluster.close()
        for proxy in proxies.values():
            await proxy.stop()


async def test_a_leaked_session_state_stops_opening_after_one_round_trip(cluster: Cluster) -> None:
    proxies = await start_recorded(cluster)
    try:
        alice, bob, a_feed, b_feed = await online_pair(cluster)
        await talk(alice, bob, a_feed, b_feed, LINES[:2])
        leaked = await current_pickles(cluster, "bob", "alice")  # malware reads bob's state once
        before = len(proxies["bob"].captured)
        # Without a round trip the leak still reads what alice sends next (same chain).
        await alice.send("bob", "still on the leaked chain")
        await b_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["text"] == "still on the leaked chain"
        )
        # One round trip: bob answers (his new ratchet key), and alice's next message uses it.
        await bob.send("alice", "a round trip starts")
        await a_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["text"] == "a round trip starts"
        )
        after_trip = len(proxies["bob"].captured)
        await alice.send("bob", "after the round trip")
        await b_feed.wait_for(
            lambda e: e["type"] == "message" and e["message"]["text"] == "after the round trip"
        )
        new = recorded_envelopes(bytes(proxies["bob"].captured[before:]))
        later = recorded_envelopes(bytes(proxies["bob"].captured[after_trip:]))
        opened = {try_open(e, "bob", cluster, leaked) for e in new if e.to == "bob"}
        assert "still on the leaked chain" in opened  # the leak was real
        assert all(try_open(e, "bob", cluster, leaked) is None for e in later if e.to == "bob")
        assert any(e.to == "bob" and e.v == 2 for e in later)
    finally:
        await cluster.close()
        for proxy in proxies.values():
            await proxy.stop()


def request_heads(captured: bytes) -> list[bytes]:
    """The head (request line and headers) of every HTTP request a recording proxy passed on."""
    return [
        block.split(b"\r\n\r\n", 1)[0]
        for block in re.split(rb"(?=(?:POST|GET|PUT|DELETE) /api/v1/)", captured)
        if block.startswith((b"POST", b"GET", b"PUT", b"DELETE"))
    ]


async def test_version_2_daemons_authenticate_their_requests_with_the_mac_not_a_signature(
    cluster: Cluster,
) -> None:
    """PROTOCOL.md §14.8 on the wire between real daemons: every request from one version 2
    daemon to another carries Flame-Mac and no Flame-Signature (nothing the recipient could show
    anyone as proof of who sent it)."""
    proxies = await start_recorded(cluster)
    try:
        alice, bob, a_feed, b_feed = await online_pair(cluster)
        await talk(alice, bob, a_feed, b_feed, LINES[:2])
        for name, sender in (("bob", "alice"), ("alice", "bob")):
            heads = request_heads(bytes(proxies[name].captured))
            posts = [h for h in heads if h.startswith(b"POST /api/v1/envelopes")]
            assert posts, heads  # the texts and receipts went this way
            for head in heads:
                lower = head.lower()
                assert b"\r\nflame-mac: " in lower and b"\r\nflame-signature:" not in lower, head
                assert f"\r\nflame-user: {sender}".encode() in lower
    finally:
        await cluster.close()
        for proxy in proxies.values():
            await proxy.stop()

"""Exactly once survives the ratchet (PROTOCOL.md §14.6), as properties of the real receiving
service over a real database: any interleaving, loss and duplication of a pair's envelopes, with
the receiver "killed" (its memory dropped, the database kept) at any point, opens every delivered
message exactly once and decrypts none twice; out-of-order delivery within the skip limit works,
beyond it (§14.5) it is a clean refusal that stores nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame.clock import SystemClock
from flame.core import envelope as envelope_rules
from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.keys import Keys
from flame.core.models import Inner, RatchetBody, TextBody
from flame.core.prekeys import PrekeyRecord
from flame.core.transport import Endpoint
from flame.devtools.cluster import fast_settings
from flame.errors import RequestError
from flame.net.peer_client import PeerClient
from flame.services.context import Context
from flame.services.events import Events
from flame.services.negotiation import Negotiation
from flame.services.sessions import Sessions
from flame.store import outbox as outbox_store
from flame.store import sessions as store
from flame.store.contacts import Contact
from flame.store.db import Database, open_daemon_db
from flame.store.outbox import Queued
from flame.store.sessions import AccountState
from tests.api.conftest import make_account

ALICE, BOB = Identity.generate(), Identity.generate()
NOWHERE = Endpoint("https://127.0.0.1:1", b"\0" * 32, "directory")  # bob only receives
DB_KEY = bytes(range(32))  # the database's own key (encrypted at rest)
A_KEY = ratchet.pickle_key(ALICE, "alice")
ALICE_CONTACT = Contact(
    "alice", ALICE.identity_key, ALICE.x25519_key, b"", None, None, None, "online", 0
)


def text(envelope_id: str, sender: str, to: str, seq: int) -> Inner:
    return Inner(
        from_=sender, to=to, id=envelope_id, seq=seq, ts=seq, kind="text",
        body=TextBody(text=f"{sender} {seq}"),
    )  # fmt: skip


@dataclass
class Bob:
    """bob's daemon as far as receiving goes: its database, and a Sessions service that can be
    thrown away (kill -9) and built again from the database."""

    db: Database
    folder: Path
    client: PeerClient | None = None
    sessions: Sessions | None = None
    opened: dict[str, list[str]] = field(default_factory=dict)

    def start(self) -> Sessions:
        keys = Keys(make_account("bob", BOB, DB_KEY))
        keys.unlock(BOB)
        ctx = Context(
            fast_settings(self.folder, "https://127.0.0.1:1"),
            self.db,
            SystemClock(),
            keys,
            Events(),
        )
        if self.client is None:
            self.client = PeerClient(keys, 1.0, SystemClock().now)
        self.sessions = Sessions(ctx, self.client, Negotiation(ctx), NOWHERE)
        return self.sessions

    async def kill(self) -> None:
        """kill -9: every in-memory state is gone (the database's own, store/sessions.OpenedIndex,
        with its connection); only the database file stays."""
        await self.db.close()
        self.db = await open_daemon_db(self.folder, DB_KEY)
        self.start()

    async def receive(self, outer: Inner) -> Inner | RequestError:
        assert self.sessions is not None
        (result,) = await self.sessions.open_all([outer])
        assert not isinstance(result, str)  # nothing here is deleted (ERASED)
        return result


async def bob_with_prekey(folder: Path) -> tuple[Bob, PrekeyRecord]:
    db = await open_daemon_db(folder, DB_KEY)
    key = ratchet.pickle_key(BOB, "bob")
    account = ratchet.new_account()
    one_time, _ = ratchet.fresh_prekeys(account, BOB, "bob", 1)
    account.mark_keys_as_published()
    await store.save_account(db, AccountState(account.pickle(key), 1))
    bob = Bob(db, folder)
    bob.start()
    return bob, one_time[0]


class Alice:
    """alice's side, from the core: one session, messages in order, replies opened."""

    def __init__(self, prekey: PrekeyRecord) -> None:
        self.account = ratchet.new_account()
        _, pickle = ratchet.outbound(self.account, A_KEY, prekey)
        self.session = ratchet.session_from(pickle, A_KEY)
        self.me = ratchet.account_identity(self.account)
        self.sent: list[Inner] = []

    def send(self) -> Inner:
        n = len(self.sent) + 1
        envelope_id = b64e(n.to_bytes(16, "big"))
        sealed = ratchet.encrypt(
            self.session,
            A_KEY,
            self.me,
            envelope_rules.encode_inner(text(envelope_id, "alice", "bob", n)),
        )
        outer = Inner(
            from_="alice", to="bob", id=envelope_id, seq=0, ts=0, kind="ratchet", body=sealed.body
        )
        self.sent.append(outer)
        return outer

    def open_reply(self, outer: Inner) -> None:
        body = outer.body
        assert isinstance(body, RatchetBody)
        opened = ratchet.decrypt(self.session, None, A_KEY, body, outer)
        self.session = ratchet.session_from(opened.pickle, A_KEY)


async def bob_replies(bob: Bob) -> Inner:
    """bob seals a reply through his service (a ratchet step), queues it as his outbox does (the
    envelope and the session state in one transaction: only then can it leave), and alice's side
    reads its outer layer."""
    assert bob.sessions is not None
    inner = text(b64e(b"\xff" * 16), "bob", "alice", 1)
    sealed = await bob.sessions.seal(ALICE_CONTACT, inner)
    queued = Queued(f"receipt:{inner.id}", "receipt", "alice", sealed.envelope, sealed.ratchet)
    async with bob.db.transaction() as conn:
        await outbox_store.enqueue(conn, [queued], 0.0, 60.0)
    return envelope_rules.open_envelope(ALICE.exchange, "alice", sealed.envelope, (2,)).inner


def forged(outer: Inner) -> Inner:
    """`outer` with the last byte of its ratchet message (its MAC) flipped."""
    body = outer.body
    assert isinstance(body, RatchetBody)
    raw = b64d(body.ciphertext)
    wrong = body.model_copy(update={"ciphertext": b64e(raw[:-1] + bytes([raw[-1] ^ 1]))})
    return outer.model_copy(update={"body": wrong})


Step = tuple[str, int]  # ("deliver", index), ("batch", index) or ("kill", 0)
schedules = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["deliver", "batch"]), st.integers(0, 11)),
        st.just(("kill", 0)),
    ),
    min_size=1,
    max_size=40,
)


async def run(first: list[Step], second: list[Step], first_count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        bob, prekey = await bob_with_prekey(Path(folder))
        alice = Alice(prekey)
        try:
            for _ in range(first_count):
                alice.send()
            delivered: set[str] = set()

            async def play(steps: list[Step]) -> None:
                for action, index in steps:
                    if action == "kill":
                        await bob.kill()
                        continue
                    outer = alice.sent[index % len(alice.sent)]
                    if action == "batch":  # three in one request, a forged copy between them
                        await batch(index)
                        continue
                    result = await bob.receive(outer)
                    got(outer, result)

            def got(outer: Inner, result: Inner | RequestError | str) -> None:
                assert isinstance(result, Inner), result  # never twice, never refused
                assert result.id == outer.id and result.from_ == "alice"
                bob.opened.setdefault(outer.id, []).append(str(result.body.model_dump()))
                delivered.add(outer.id)

            async def batch(index: int) -> None:
                """sent[i], a forged copy of sent[i+1], sent[i+2] in one batch: the forged one
                is refused (unless its id was opened before: then it is answered from the
                store, never decrypted) and leaves the session able to open the others."""
                first, middle, last = (alice.sent[(index + k) % len(alice.sent)] for k in range(3))
                assert bob.sessions is not None
                results = await bob.sessions.open_all([first, forged(middle), last])
                got(first, results[0])
                if middle.id in delivered:
                    got(middle, results[1])
                else:
                    assert isinstance(results[1], RequestError)
                got(last, results[2])

            await play(first)
            if delivered:  # bob answers: a ratchet step; alice's next chain starts from it
                alice.open_reply(await bob_replies(bob))
            for _ in range(12 - first_count):
                alice.send()
            await play(second)
            opened = await store.staged(bob.db, "alice", [o.id for o in alice.sent])
            assert set(opened) == delivered  # every delivered one, exactly once, and no other
            for envelope_id, seen in bob.opened.items():
                assert len(set(seen)) == 1  # every copy gave the same message
                inner = opened[envelope_id]
                assert inner is not None and inner.id == envelope_id
        finally:
            assert bob.client is not None
            await bob.client.close()
            await bob.db.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=schedules, second=schedules, first_count=st.integers(1, 8))
def test_any_interleaving_loss_duplication_and_crash_opens_each_message_exactly_once(
    first: list[Step], second: list[Step], first_count: int
) -> None:
    asyncio.run(run(first, second, first_count))


async def test_beyond_the_skip_limit_is_a_clean_refusal(tmp_path: Path) -> None:
    bob, prekey = await bob_with_prekey(tmp_path)
    alice = Alice(prekey)
    try:
        outers = [alice.send() for _ in range(ratchet.MAX_SKIPPED_PER_CHAIN + 6)]
        newest = await bob.receive(outers[-1])  # 45 skipped: only the newest 40 keys are kept
        assert isinstance(newest, Inner)
        before = await store.load_sessions(bob.db, "alice")
        refused = [await bob.receive(o) for o in outers[:5]]
        assert all(isinstance(r, RequestError) and r.code == "no_session" for r in refused)
        assert await store.load_sessions(bob.db, "alice") == before  # nothing changed
        assert await store.staged(bob.db, "alice", [o.id for o in outers[:5]]) == {}
        for outer in outers[5:-1]:  # within the limit, in any order
            assert isinstance(await bob.receive(outer), Inner)
        again = await bob.receive(outers[7])  # a duplicate: from the store, not decrypted
        assert isinstance(again, Inner) and again.id == outers[7].id
    finally:
        assert bob.client is not None
        await bob.client.close()
        await bob.db.close()


def varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value, shift, at = value | (byte & 0x7F) << shift, shift + 7, at + 1
        if byte < 0x80:
            return value, at


def chain_and_index(body: RatchetBody) -> tuple[bytes, int]:
    """The ratchet key T_i and message index j of a version 2 message, read by the byte layout
    of PROTOCOL.md §14.5: together they name the message key it used."""
    data = b64d(body.ciphertext)
    at = 1  # the version byte 0x03
    if body.type == ratchet.PRE_KEY:  # K_B, E_A, I_A, then the normal message
        for tag in (0x0A, 0x12, 0x1A):
            assert data[at] == tag
            length, at = varint(data, at + 1)
            at += length
        assert data[at] == 0x22
        _, at = varint(data, at + 1)
        assert data[at] == 0x03
        at += 1
    assert data[at] == 0x0A
    length, at = varint(data, at + 1)
    key = data[at : at + length]
    assert data[at + length] == 0x10
    index, _ = varint(data, at + length + 1)
    return key, index


async def test_a_message_key_is_never_used_twice_and_the_stored_state_never_goes_back(
    tmp_path: Path,
) -> None:
    """bob seals replies through his service, each queued with its state (the outbox's
    transaction); killed between them, he goes on from what was stored: no (chain, index) twice.
    A state older than the stored one never replaces it."""
    bob, prekey = await bob_with_prekey(tmp_path)
    alice = Alice(prekey)
    try:
        assert isinstance(await bob.receive(alice.send()), Inner)
        used = []
        generations = []
        for round_ in range(6):
            reply = await bob_replies(bob)
            assert isinstance(reply.body, RatchetBody)
            used.append(chain_and_index(reply.body))
            (state,) = await store.load_sessions(bob.db, "alice")
            generations.append(state.generation)
            if round_ % 2:
                await bob.kill()
        assert len(set(used)) == len(used)  # every message key once
        assert [index for _, index in used] == sorted(index for _, index in used)
        assert generations == sorted(set(generations))  # strictly forward
        (newest,) = await store.load_sessions(bob.db, "alice")
        stale = dataclasses.replace(newest, pickle="older", generation=newest.generation - 1)
        await store.save_sessions(bob.db, [stale])
        assert await store.load_sessions(bob.db, "alice") == [newest]
    finally:
        assert bob.client is not None
        await bob.client.close()
        await bob.db.close()

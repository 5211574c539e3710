"""The version 2 vectors of docs/PROTOCOL.md §14.10, written by tools/gen_vectors.py.

Deterministic outputs (pickle key, pair key, request MAC, prekey signature, the sealed envelope)
come from §10's fixed inputs; the Olm transcript is recorded from a fresh handshake (Olm draws its
own keys), as pickles and messages that tests/core/test_vectors_v2.py opens again.
"""

from __future__ import annotations

import hashlib
from typing import Any

import vodozemac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flame.core import envelope as env
from flame.core import prekeys, ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.models import Envelope, EnvelopeBatch, Inner, TextBody
from flame.core.signing import REQUEST_CONTEXT_MAC, record_message, request_string
from tests.core import olm_spec as olm  # the repository's root is on the path (gen_vectors.py)

TEXTS = ("Hello, Bob! 🔥 (first, a prekey message)", "and a second one", "Hi Alice (reply)")
ID_1, ID_2, ID_3 = (b64e(bytes([n]) * 16) for n in (1, 2, 3))


def inner(sender: str, to: str, envelope_id: str, seq: int, text: str) -> Inner:
    return Inner(
        from_=sender,
        to=to,
        id=envelope_id,
        seq=seq,
        ts=1700000000123 + seq,
        kind="text",
        body=TextBody(text=text),
    )


def vector_request(req: dict[str, Any], body: bytes, **options: Any) -> bytes:
    """The request string (PROTOCOL.md §4.2) of the vectors' request inputs, over `body`."""
    fields = ("method", "path_qs", "host", "user", "audience", "timestamp", "nonce")
    return request_string(*(req[name] for name in fields), body, **options)


def build(inputs: dict[str, Any], alice: Identity, bob: Identity) -> dict[str, Any]:
    a_key = ratchet.pickle_key(alice, "alice")
    b_key = ratchet.pickle_key(bob, "bob")
    pair = ratchet.pair_key(alice.exchange, "alice", bob.x25519_key, "bob")
    # The handshake: bob publishes, alice claims one of his one-time keys.
    bob_account = ratchet.new_account()
    one_time, _ = ratchet.fresh_prekeys(bob_account, bob, "bob", 1)
    bob_account.mark_keys_as_published()
    bob_pickle = bob_account.pickle(b_key)
    alice_account = ratchet.new_account()
    _, pickle = ratchet.outbound(alice_account, a_key, one_time[0])
    session = ratchet.session_from(pickle, a_key)
    me = ratchet.account_identity(alice_account)
    first = ratchet.encrypt(
        session, a_key, me, env.encode_inner(inner("alice", "bob", ID_1, 1, TEXTS[0]))
    )
    second = ratchet.encrypt(
        session, a_key, me, env.encode_inner(inner("alice", "bob", ID_2, 2, TEXTS[1]))
    )
    # Bob opens both (on a copy of his account), answers; alice's state is recorded after that.
    prekey_message = vodozemac.AnyOlmMessage.from_parts(0, b64d(first.body.ciphertext))
    prekey = prekey_message.to_pre_key()
    assert prekey is not None
    bob_session, _ = vodozemac.Account.from_pickle(bob_pickle, b_key).create_inbound_session(
        alice_account.curve25519_key, prekey
    )
    bob_session.decrypt(vodozemac.AnyOlmMessage.from_parts(0, b64d(second.body.ciphertext)))
    reply = ratchet.encrypt(
        bob_session,
        b_key,
        ratchet.account_identity(bob_account),
        env.encode_inner(inner("bob", "alice", ID_3, 1, TEXTS[2])),
    )
    outer = Inner(from_="alice", to="bob", id=ID_1, seq=0, ts=0, kind="ratchet", body=first.body)
    eph = X25519PrivateKey.from_private_bytes(
        bytes.fromhex(inputs["envelope"]["ephemeral_private_hex"])
    )
    sealed = env.seal(alice.exchange, "bob", bob.x25519_key, outer, ephemeral=eph, version=2)
    body = EnvelopeBatch(envelopes=[Envelope(**sealed.model_dump())]).model_dump_json().encode()
    req = inputs["request"]
    string = vector_request(req, body, context=REQUEST_CONTEXT_MAC)
    record = one_time[0]
    fields = prekeys.prekey_fields(record.username, record.identity, record.key, record.fallback)
    return {
        "pickle_key_alice_hex": a_key.hex(),
        "pickle_key_bob_hex": b_key.hex(),
        "pair_key_hex": pair.hex(),
        "request": {
            "body": body.decode(),
            "string": string.decode(),
            "mac": b64e(ratchet.request_mac(pair, string)),
        },
        "prekey": {
            "record": record.model_dump(),
            "message": record_message(prekeys.PREKEY_CONTEXT, fields).decode(),
        },
        "transcript": {
            "texts": list(TEXTS),
            "ids": [ID_1, ID_2, ID_3],
            "bob_account_pickle": bob_pickle,
            "alice_identity": me,
            "first": first.body.model_dump(),
            "second": second.body.model_dump(),
            "alice_session_pickle": second.pickle,
            "reply": reply.body.model_dump(),
            "session_id": first.session_id,
        },
        "envelope": {
            "inner_json": env.encode_inner(outer).decode(),
            "envelope_json": sealed.model_dump_json(),
        },
    }


# --- deterministic Olm (PROTOCOL.md §14.10): fixed keys, loaded into vodozemac as libolm pickles --

OLM_SECRETS = (
    "alice_identity",
    "alice_base",
    "alice_ratchet_0",
    "alice_ratchet_2",
    "bob_identity",
    "bob_one_time",
    "bob_ratchet_1",
    "bob_ed25519_seed",
)
OLM_TEXTS = ("first, in a prekey message", "second, still a prekey message", "a reply", "again")
OLM_IDS = tuple(b64e(bytes([n]) * 16) for n in (0x11, 0x12, 0x13, 0x14))


def olm_plaintexts() -> list[bytes]:
    """The four ratchet plaintexts: Flame inner messages (§14.4), alice, alice, bob, alice."""
    senders = ("alice", "alice", "bob", "alice")
    return [
        env.encode_inner(inner(who, "bob" if who == "alice" else "alice", OLM_IDS[n], n + 1, text))
        for n, (who, text) in enumerate(zip(senders, OLM_TEXTS, strict=True))
    ]


def build_olm(a_key: bytes, b_key: bytes) -> dict[str, Any]:
    """Each step of §14.5 from the spec (tests/core/olm_spec.py), checked against vodozemac, which
    must write the same bytes from sessions that hold these keys and open them by itself."""
    secret = {n: hashlib.sha256(f"flame olm vector {n}".encode()).digest() for n in OLM_SECRETS}
    pub = {n: olm.public(s) for n, s in secret.items() if n != "bob_ed25519_seed"}
    i_a, e_a, t0, t2 = (pub[n] for n in OLM_SECRETS[:4])
    i_b, k_b, t1 = (pub[n] for n in OLM_SECRETS[4:7])
    s = olm.shared_secret(secret["alice_identity"], secret["alice_base"], i_b, k_b)
    r0, c0 = olm.root(s)
    r1, c1 = olm.ratchet_step(r0, secret["bob_ratchet_1"], t0)
    r2, c2 = olm.ratchet_step(r1, secret["alice_ratchet_2"], t1)
    texts = olm_plaintexts()
    steps = [(t0, 0, c0), (t0, 1, c0), (t1, 0, c1), (t2, 0, c2)]
    normals = [
        olm.normal_message(t, j, c, text) for (t, j, c), text in zip(steps, texts, strict=True)
    ]
    wire = [olm.prekey_message(k_b, e_a, i_a, m) for m in normals[:2]] + normals[2:]
    keys = (i_a, e_a, k_b)
    sender = {r1: (t1, c1, "bob_ratchet_1", b_key), r2: (t2, c2, "alice_ratchet_2", a_key)}

    def answered(root_key: bytes, heard: olm.Chain) -> str:
        """The session of the side that heard `heard` and then took the ratchet step."""
        ratchet_pub, chain_key, name, key = sender[root_key]
        mine = olm.Chain(ratchet_pub, chain_key, 0, secret[name])
        return olm.session_pickle(keys, root_key, mine, [heard], key)

    pickles = {
        "bob_account": olm.account_pickle(
            secret["bob_ed25519_seed"], secret["bob_identity"], [(1, secret["bob_one_time"])], b_key
        ),
        "alice_session_0": olm.session_pickle(
            keys, r0, olm.Chain(t0, c0, 0, secret["alice_ratchet_0"]), [], a_key
        ),
        "bob_session_1": answered(r1, olm.Chain(t0, olm.chain_at(c0, 2), 2)),
        "alice_session_2": answered(r2, olm.Chain(t1, olm.chain_at(c1, 1), 1)),
    }
    # vodozemac writes the same bytes from these states...
    alice = vodozemac.Session.from_libolm_pickle(pickles["alice_session_0"], a_key)
    bob = vodozemac.Session.from_libolm_pickle(pickles["bob_session_1"], b_key)
    later = vodozemac.Session.from_libolm_pickle(pickles["alice_session_2"], a_key)
    made = [alice.encrypt(texts[0]), alice.encrypt(texts[1]), bob.encrypt(texts[2])]
    made.append(later.encrypt(texts[3]))
    assert [m.to_parts()[1] for m in made] == wire, "vodozemac disagrees with §14.5"
    # ...and opens them, deriving every key itself.
    account = vodozemac.Account.from_libolm_pickle(pickles["bob_account"], b_key)
    first = vodozemac.AnyOlmMessage.from_parts(0, wire[0]).to_pre_key()
    assert first is not None
    opened, plain = account.create_inbound_session(
        vodozemac.Curve25519PublicKey.from_bytes(i_a), first
    )
    assert plain == texts[0] and opened.session_id == olm.session_id(i_a, e_a, k_b)
    assert alice.decrypt(vodozemac.AnyOlmMessage.from_parts(1, wire[2])) == texts[2]
    assert bob.decrypt(vodozemac.AnyOlmMessage.from_parts(1, wire[3])) == texts[3]
    messages = []
    for n, ((t, j, c), text) in enumerate(zip(steps, texts, strict=True)):
        m = olm.message_key(olm.chain_at(c, j))
        mk = olm.message_keys(m)
        messages.append(
            {
                "from": "bob" if n == 2 else "alice",
                "type": 0 if n < 2 else 1,
                "ratchet_key_hex": t.hex(),
                "index": j,
                "chain_key_hex": olm.chain_at(c, j).hex(),
                "message_key_hex": m.hex(),
                "aes_key_hex": mk.aes_key.hex(),
                "mac_key_hex": mk.mac_key.hex(),
                "iv_hex": mk.iv.hex(),
                "plaintext": text.decode(),
                "message_hex": wire[n].hex(),
            }
        )
    return {
        "inputs": {f"{n}_hex": v.hex() for n, v in secret.items()} | {"bob_one_time_id": 1},
        "public_hex": {n: v.hex() for n, v in pub.items()},
        "handshake": {
            "S_hex": s.hex(),
            "R0_hex": r0.hex(),
            "C0_hex": c0.hex(),
            "session_id": olm.session_id(i_a, e_a, k_b),
        },
        "ratchet": {
            "R1_hex": r1.hex(),
            "C1_hex": c1.hex(),
            "R2_hex": r2.hex(),
            "C2_hex": c2.hex(),
        },
        "messages": messages,
        "libolm_pickles": pickles,
    }

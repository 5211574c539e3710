"""The version 2 vectors of docs/PROTOCOL.md §14.10, written by tools/gen_vectors.py.

Deterministic outputs (pickle key, pair key, request MAC, prekey signature, the sealed envelope)
come from §10's fixed inputs; the Olm transcript is recorded from a fresh handshake (Olm draws its
own keys), as pickles and messages that tests/core/test_vectors_v2.py opens again.
"""

from __future__ import annotations

from typing import Any

import vodozemac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flame.core import envelope as env
from flame.core import prekeys, ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.models import Envelope, EnvelopeBatch, Inner, TextBody
from flame.core.signing import REQUEST_CONTEXT_MAC, record_message, request_string

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

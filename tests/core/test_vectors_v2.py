"""The version 2 vectors of docs/PROTOCOL.md §14.10: recomputed from the document's text with bare
primitives and by the code, and the recorded Olm transcript opened again."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import vodozemac
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flame.core import envelope as env
from flame.core import prekeys, ratchet
from flame.core.encoding import b64d
from flame.core.models import Inner, RatchetBody
from flame.core.prekeys import PrekeyRecord
from flame.core.signing import REQUEST_CONTEXT_MAC, record_message
from tests.core.test_vectors import INPUTS, ephemeral, identity, vectors_block


def load_v2() -> dict[str, Any]:
    return vectors_block("v2-vectors", "§14.10")


V2 = load_v2()
ALICE, BOB = identity("alice"), identity("bob")


def hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def test_pickle_keys_follow_the_text() -> None:
    for name, user in (("alice", ALICE), ("bob", BOB)):
        expected = hkdf(user.secret(), b"flame/v2/pickle-key\n" + name.encode())
        assert V2[f"pickle_key_{name}_hex"] == expected.hex()
        assert ratchet.pickle_key(user, name) == expected


def test_pair_key_is_the_same_on_both_sides_and_follows_the_text() -> None:
    shared = ALICE.exchange.exchange(BOB.exchange.public_key())
    expected = hkdf(shared, b"flame/v2/request-mac\nalice\nbob")
    assert V2["pair_key_hex"] == expected.hex()
    assert ratchet.pair_key(ALICE.exchange, "alice", BOB.x25519_key, "bob") == expected
    assert ratchet.pair_key(BOB.exchange, "bob", ALICE.x25519_key, "alice") == expected


def test_request_mac_matches_the_vector() -> None:
    request = V2["request"]
    lines = request["string"].split("\n")
    assert lines[0] == REQUEST_CONTEXT_MAC and len(lines) == 9
    assert lines[8] == hashlib.sha256(request["body"].encode()).hexdigest()
    mac = hmac.digest(bytes.fromhex(V2["pair_key_hex"]), request["string"].encode(), "sha256")
    assert b64d(request["mac"], length=32) == mac


def test_prekey_record_signature_matches_the_vector() -> None:
    record = PrekeyRecord.model_validate(V2["prekey"]["record"])
    assert prekeys.verify_prekey(record, BOB.identity_key)
    assert not prekeys.verify_prekey(record, ALICE.identity_key)
    fields = prekeys.prekey_fields(record.username, record.identity, record.key, record.fallback)
    assert record_message("prekey", fields).decode() == V2["prekey"]["message"]
    signed = prekeys.sign_prekey(BOB, "bob", record.identity, record.key, fallback=False)
    assert signed == record  # Ed25519 is deterministic


def test_version_2_envelope_matches_the_vector_and_opens() -> None:
    vector = V2["envelope"]
    outer = Inner.model_validate_json(vector["inner_json"])
    sealed = env.seal(
        ALICE.exchange, "bob", BOB.x25519_key, outer, ephemeral=ephemeral(), version=2
    )
    assert sealed.model_dump_json() == vector["envelope_json"]
    opened = env.open_envelope(BOB.exchange, "bob", sealed, (1, 2))
    assert opened.inner == outer and opened.sender_key == ALICE.x25519_key
    assert sealed.v == 2 and INPUTS["envelope"]["ephemeral_private_hex"]


def test_recorded_handshake_and_first_messages_open_again() -> None:
    t = V2["transcript"]
    b_key = bytes.fromhex(V2["pickle_key_bob_hex"])
    a_key = bytes.fromhex(V2["pickle_key_alice_hex"])
    first, second, reply = (RatchetBody.model_validate(t[k]) for k in ("first", "second", "reply"))
    assert first.type == 0 and first.identity == t["alice_identity"]
    record = PrekeyRecord.model_validate(V2["prekey"]["record"])
    # §14.4: the session id is SHA-256(I_A || E_A || K_B), standard base64 without padding.
    raw = b64d(first.ciphertext)
    base_key = raw[raw.index(b"\x12\x20") + 2 :][:32]
    digest = hashlib.sha256(b64d(t["alice_identity"]) + base_key + b64d(record.key)).digest()
    assert base64.b64encode(digest).decode().rstrip("=") == t["session_id"] == first.session
    account = vodozemac.Account.from_pickle(t["bob_account_pickle"], b_key)
    texts, ids = t["texts"], t["ids"]
    outer = [
        Inner(from_="alice", to="bob", id=ids[i], seq=0, ts=0, kind="ratchet", body=body)
        for i, body in enumerate((first, second))
    ]
    opened = ratchet.decrypt(None, account, b_key, first, outer[0])
    assert opened.account_pickle is not None and opened.session_id == t["session_id"]
    assert opened.inner.body.model_dump() == {"text": texts[0]}
    bob_session = ratchet.session_from(opened.pickle, b_key)
    again = ratchet.decrypt(bob_session, None, b_key, second, outer[1])
    assert again.inner.body.model_dump() == {"text": texts[1]}
    alice_session = ratchet.session_from(t["alice_session_pickle"], a_key)
    back = Inner(from_="bob", to="alice", id=ids[2], seq=0, ts=0, kind="ratchet", body=reply)
    answered = ratchet.decrypt(alice_session, None, a_key, reply, back)
    assert answered.inner.body.model_dump() == {"text": texts[2]}

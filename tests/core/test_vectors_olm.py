"""The deterministic Olm vectors of docs/PROTOCOL.md §14.10: every step of §14.5 (handshake,
chains, message keys, message bytes, two ratchet steps) recomputed from the text with bare
primitives (tests/core/olm_spec.py); vodozemac, handed the same keys as libolm pickles, writes the
same bytes; and Flame's own receive path (flame.core.ratchet) opens them."""

from __future__ import annotations

from typing import Any

import pytest
import vodozemac

from flame.core import ratchet
from flame.core.encoding import b64e
from flame.core.models import Inner, RatchetBody
from tests.core import olm_spec as olm
from tests.core.test_vectors import identity, vectors_block


def load_olm() -> dict[str, Any]:
    return vectors_block("olm-vectors", "§14.10")


V = load_olm()
SECRET = {
    k.removesuffix("_hex"): bytes.fromhex(v) for k, v in V["inputs"].items() if k.endswith("_hex")
}
PUB = {k: bytes.fromhex(v) for k, v in V["public_hex"].items()}
A_KEY = ratchet.pickle_key(identity("alice"), "alice")
B_KEY = ratchet.pickle_key(identity("bob"), "bob")
TEXTS = [m["plaintext"].encode() for m in V["messages"]]


def wire(n: int) -> bytes:
    return bytes.fromhex(V["messages"][n]["message_hex"])


def keys() -> tuple[bytes, bytes, bytes]:
    return PUB["alice_identity"], PUB["alice_base"], PUB["bob_one_time"]


def test_the_inputs_are_named_and_the_public_keys_follow() -> None:
    for name, secret in SECRET.items():
        if name != "bob_ed25519_seed":
            assert olm.public(secret) == PUB[name], name


def test_the_handshake_follows_the_text() -> None:
    s = olm.shared_secret(
        SECRET["alice_identity"], SECRET["alice_base"], PUB["bob_identity"], PUB["bob_one_time"]
    )
    # bob computes the same S from his side (§14.5: the three exchanges, in that order)
    bobs = (
        olm.dh(SECRET["bob_one_time"], PUB["alice_identity"])
        + olm.dh(SECRET["bob_identity"], PUB["alice_base"])
        + olm.dh(SECRET["bob_one_time"], PUB["alice_base"])
    )
    assert s == bobs and s.hex() == V["handshake"]["S_hex"]
    r0, c0 = olm.root(s)
    assert (r0.hex(), c0.hex()) == (V["handshake"]["R0_hex"], V["handshake"]["C0_hex"])
    assert olm.session_id(*keys()) == V["handshake"]["session_id"]


def test_both_ratchet_steps_follow_the_text_from_either_side() -> None:
    r0 = bytes.fromhex(V["handshake"]["R0_hex"])
    r1, c1 = olm.ratchet_step(r0, SECRET["bob_ratchet_1"], PUB["alice_ratchet_0"])
    assert (r1, c1) == olm.ratchet_step(r0, SECRET["alice_ratchet_0"], PUB["bob_ratchet_1"])
    r2, c2 = olm.ratchet_step(r1, SECRET["alice_ratchet_2"], PUB["bob_ratchet_1"])
    assert (r2, c2) == olm.ratchet_step(r1, SECRET["bob_ratchet_1"], PUB["alice_ratchet_2"])
    got = {"R1_hex": r1.hex(), "C1_hex": c1.hex(), "R2_hex": r2.hex(), "C2_hex": c2.hex()}
    assert got == V["ratchet"]


@pytest.mark.parametrize("n", range(4))
def test_each_message_follows_the_text(n: int) -> None:
    m = V["messages"][n]
    chain0 = {"alice_ratchet_0": "C0_hex", "bob_ratchet_1": "C1_hex", "alice_ratchet_2": "C2_hex"}
    ratchet_name = next(k for k in chain0 if PUB[k].hex() == m["ratchet_key_hex"])
    start = bytes.fromhex({**V["handshake"], **V["ratchet"]}[chain0[ratchet_name]])
    chain = olm.chain_at(start, m["index"])
    key = olm.message_key(chain)
    mk = olm.message_keys(key)
    assert chain.hex() == m["chain_key_hex"] and key.hex() == m["message_key_hex"]
    assert (mk.aes_key.hex(), mk.mac_key.hex(), mk.iv.hex()) == (
        m["aes_key_hex"],
        m["mac_key_hex"],
        m["iv_hex"],
    )
    normal = olm.normal_message(PUB[ratchet_name], m["index"], start, m["plaintext"].encode())
    if m["type"] == 0:
        expected = olm.prekey_message(
            PUB["bob_one_time"], PUB["alice_base"], PUB["alice_identity"], normal
        )
    else:
        expected = normal
    assert expected == wire(n)


def test_the_libolm_pickles_follow_the_text() -> None:
    r0, c0 = (bytes.fromhex(V["handshake"][k]) for k in ("R0_hex", "C0_hex"))
    account = olm.account_pickle(
        SECRET["bob_ed25519_seed"], SECRET["bob_identity"], [(1, SECRET["bob_one_time"])], B_KEY
    )
    session = olm.session_pickle(
        keys(), r0, olm.Chain(PUB["alice_ratchet_0"], c0, 0, SECRET["alice_ratchet_0"]), [], A_KEY
    )
    assert account == V["libolm_pickles"]["bob_account"]
    assert session == V["libolm_pickles"]["alice_session_0"]


def test_vodozemac_writes_the_same_bytes_from_the_same_keys() -> None:
    pickles = V["libolm_pickles"]
    alice = vodozemac.Session.from_libolm_pickle(pickles["alice_session_0"], A_KEY)
    bob = vodozemac.Session.from_libolm_pickle(pickles["bob_session_1"], B_KEY)
    later = vodozemac.Session.from_libolm_pickle(pickles["alice_session_2"], A_KEY)
    assert alice.session_id == bob.session_id == V["handshake"]["session_id"]
    written = [alice.encrypt(TEXTS[0]), alice.encrypt(TEXTS[1]), bob.encrypt(TEXTS[2])]
    written.append(later.encrypt(TEXTS[3]))
    assert [m.to_parts() for m in written] == [
        (V["messages"][n]["type"], wire(n)) for n in range(4)
    ]


def body(n: int, identity_b64: str | None) -> tuple[RatchetBody, Inner]:
    m = V["messages"][n]
    ratchet_body = RatchetBody(
        session=V["handshake"]["session_id"],
        type=m["type"],
        identity=identity_b64 if m["type"] == 0 else None,
        ciphertext=b64e(wire(n)),
    )
    inner = Inner.model_validate_json(m["plaintext"])
    outer = Inner(
        from_=inner.from_, to=inner.to, id=inner.id, seq=0, ts=0, kind="ratchet", body=ratchet_body
    )
    return ratchet_body, outer


def test_flame_opens_them_deriving_every_key_itself() -> None:
    """Bob's account (his identity and one-time key, nothing else) starts the session from the
    first prekey message; each side opens the other's ratchet step."""
    pickles = V["libolm_pickles"]
    account = vodozemac.Account.from_libolm_pickle(pickles["bob_account"], B_KEY)
    alice_identity = b64e(PUB["alice_identity"])  # as ratchet.account_identity gives it
    first, outer = body(0, alice_identity)
    opened = ratchet.decrypt(None, account, B_KEY, first, outer)
    assert opened.session_id == V["handshake"]["session_id"]
    assert opened.inner == Inner.model_validate_json(TEXTS[0])
    second, outer = body(1, alice_identity)
    again = ratchet.decrypt(ratchet.session_from(opened.pickle, B_KEY), None, B_KEY, second, outer)
    assert again.inner == Inner.model_validate_json(TEXTS[1])
    alice = vodozemac.Session.from_libolm_pickle(pickles["alice_session_0"], A_KEY)
    alice.encrypt(TEXTS[0]), alice.encrypt(TEXTS[1])
    reply, outer = body(2, None)
    assert ratchet.decrypt(alice, None, A_KEY, reply, outer).inner == Inner.model_validate_json(
        TEXTS[2]
    )
    bob = vodozemac.Session.from_libolm_pickle(pickles["bob_session_1"], B_KEY)
    bob.encrypt(TEXTS[2])
    fourth, outer = body(3, None)
    assert ratchet.decrypt(bob, None, B_KEY, fourth, outer).inner == Inner.model_validate_json(
        TEXTS[3]
    )


def test_one_altered_byte_of_a_vector_message_does_not_open() -> None:
    pickles = V["libolm_pickles"]
    bob = vodozemac.Session.from_libolm_pickle(pickles["bob_session_1"], B_KEY)
    altered = bytearray(wire(3))
    altered[-1] ^= 1  # the truncated MAC (§14.5)
    with pytest.raises(vodozemac.OlmDecryptionException):
        bob.decrypt(vodozemac.AnyOlmMessage.from_parts(1, bytes(altered)))

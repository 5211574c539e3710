"""Keys, fingerprints, safety numbers and the keystore (PROTOCOL.md §3)."""

from __future__ import annotations

import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame.core.crypto import (
    KEYSTORE_CONTEXT,
    Identity,
    KdfParams,
    SealedKeystore,
    binding_message,
    fingerprint,
    open_keystore,
    safety_number,
    seal_keystore,
    verify_signature,
)
from flame.errors import WrongPassword

CHEAP = KdfParams(memory_kib=64, iterations=1)
ALICE = Identity.generate()
BOB = Identity.generate()
FAST = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
keys = st.binary(min_size=32, max_size=32)
SAFETY_NUMBER = re.compile(r"\d{5}( \d{5}){11}")
FINGERPRINT = re.compile(r"[0-9a-f]{4}( [0-9a-f]{4}){7}")


# --- the keystore --------------------------------------------------------------------------


DB_KEY = bytes(range(32))


def test_keystore_round_trip_holds_the_keys_and_the_database_key() -> None:
    sealed = seal_keystore(ALICE, DB_KEY, "alice", "correct horse", CHEAP)
    opened = open_keystore(sealed, "alice", "correct horse")
    assert opened.identity.secret() == ALICE.secret()
    assert opened.identity.identity_key == ALICE.identity_key
    assert opened.identity.x25519_key == ALICE.x25519_key
    assert opened.db_key == DB_KEY


def test_keystore_layout() -> None:
    sealed = seal_keystore(ALICE, DB_KEY, "alice", "pw", CHEAP)
    assert len(sealed.salt) == 16
    assert len(sealed.nonce) == 12
    assert len(sealed.ciphertext) == 64 + 32 + 16
    assert sealed.params == CHEAP
    with pytest.raises(ValueError):
        seal_keystore(ALICE, DB_KEY[:16], "alice", "pw", CHEAP)


def test_a_keystore_sealed_before_the_database_key_opens_without_one() -> None:
    """An older keystore sealed the 64-byte secret alone (PROTOCOL.md §3.6)."""
    salt, nonce = bytes(16), bytes(12)
    key = Argon2id(salt=salt, length=32, iterations=1, lanes=1, memory_cost=64).derive(b"pw")
    old = ChaCha20Poly1305(key).encrypt(nonce, ALICE.secret(), KEYSTORE_CONTEXT + b"alice")
    opened = open_keystore(SealedKeystore(salt, nonce, old, CHEAP), "alice", "pw")
    assert opened.identity.secret() == ALICE.secret() and opened.db_key is None
    odd = ChaCha20Poly1305(key).encrypt(nonce, ALICE.secret() + b"x", KEYSTORE_CONTEXT + b"alice")
    with pytest.raises(WrongPassword):
        open_keystore(SealedKeystore(salt, nonce, odd, CHEAP), "alice", "pw")


def test_each_sealing_is_fresh() -> None:
    first = seal_keystore(ALICE, DB_KEY, "alice", "pw", CHEAP)
    second = seal_keystore(ALICE, DB_KEY, "alice", "pw", CHEAP)
    assert first.salt != second.salt
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize("password", ["wrong", "", "correct horse ", "Correct horse"])
def test_wrong_password_raises_wrong_password(password: str) -> None:
    sealed = seal_keystore(ALICE, DB_KEY, "alice", "correct horse", CHEAP)
    with pytest.raises(WrongPassword):
        open_keystore(sealed, "alice", password)


def test_keystore_is_bound_to_the_username() -> None:
    sealed = seal_keystore(ALICE, DB_KEY, "alice", "pw", CHEAP)
    with pytest.raises(WrongPassword):
        open_keystore(sealed, "mallory", "pw")


def test_tampered_keystore_does_not_open() -> None:
    sealed = seal_keystore(ALICE, DB_KEY, "alice", "pw", CHEAP)
    for index in range(len(sealed.ciphertext)):
        ciphertext = bytearray(sealed.ciphertext)
        ciphertext[index] ^= 1
        tampered = SealedKeystore(sealed.salt, sealed.nonce, bytes(ciphertext), sealed.params)
        with pytest.raises(WrongPassword):
            open_keystore(tampered, "alice", "pw")
    other_salt = SealedKeystore(bytes(16), sealed.nonce, sealed.ciphertext, sealed.params)
    with pytest.raises(WrongPassword):
        open_keystore(other_salt, "alice", "pw")


def test_keystore_opens_with_the_params_it_was_sealed_with() -> None:
    sealed = seal_keystore(ALICE, DB_KEY, "alice", "pw", KdfParams(memory_kib=128, iterations=2))
    assert open_keystore(sealed, "alice", "pw").identity.secret() == ALICE.secret()
    stronger = SealedKeystore(sealed.salt, sealed.nonce, sealed.ciphertext, CHEAP)
    with pytest.raises(WrongPassword):
        open_keystore(stronger, "alice", "pw")


# --- identities ----------------------------------------------------------------------------


def test_identity_secret_round_trip() -> None:
    again = Identity.from_secret(ALICE.secret())
    assert again.identity_key == ALICE.identity_key
    assert again.x25519_key == ALICE.x25519_key
    assert len(ALICE.secret()) == 64


@pytest.mark.parametrize("length", [0, 32, 63, 65])
def test_identity_secret_must_be_64_bytes(length: int) -> None:
    with pytest.raises(ValueError):
        Identity.from_secret(bytes(length))


def test_binding_signature_binds_username_and_key() -> None:
    sig = ALICE.binding_signature("alice")
    assert verify_signature(ALICE.identity_key, sig, binding_message("alice", ALICE.x25519_key))
    assert not verify_signature(ALICE.identity_key, sig, binding_message("bob", ALICE.x25519_key))
    assert not verify_signature(ALICE.identity_key, sig, binding_message("alice", BOB.x25519_key))
    assert not verify_signature(BOB.identity_key, sig, binding_message("alice", ALICE.x25519_key))


@pytest.mark.parametrize(
    "key,sig",
    [(bytes(31), bytes(64)), (bytes(32), bytes(63)), (b"", b""), (b"\xff" * 32, bytes(64))],
)
def test_verify_signature_answers_false_for_bad_input(key: bytes, sig: bytes) -> None:
    assert verify_signature(key, sig, b"message") is False


# --- fingerprints and safety numbers -------------------------------------------------------


def test_fingerprint_format() -> None:
    printed = fingerprint(ALICE.identity_key)
    assert FINGERPRINT.fullmatch(printed)
    assert len(printed) == 39
    assert fingerprint(ALICE.identity_key) == printed
    assert fingerprint(BOB.identity_key) != printed


@FAST
@given(keys)
def test_fingerprint_format_for_any_key(key: bytes) -> None:
    assert FINGERPRINT.fullmatch(fingerprint(key))


def test_safety_number_is_symmetric_and_twelve_groups_of_five() -> None:
    number = safety_number(ALICE.identity_key, BOB.identity_key)
    assert number == safety_number(BOB.identity_key, ALICE.identity_key)
    assert SAFETY_NUMBER.fullmatch(number)
    assert len(number.split()) == 12
    assert all(len(group) == 5 for group in number.split())


@FAST
@given(keys, keys)
def test_safety_number_is_symmetric_for_any_pair(a: bytes, b: bytes) -> None:
    number = safety_number(a, b)
    assert number == safety_number(b, a)
    assert SAFETY_NUMBER.fullmatch(number)


def test_safety_number_changes_with_either_key() -> None:
    carol = Identity.generate()
    number = safety_number(ALICE.identity_key, BOB.identity_key)
    assert safety_number(ALICE.identity_key, carol.identity_key) != number
    assert safety_number(carol.identity_key, BOB.identity_key) != number


# --- Ed25519 verification by libsodium (core/crypto.py) --------------------------------------

ORDER_L = 2**252 + 27742317777372353535851937790883648493  # the group order (RFC 8032)


@FAST
@given(message=st.binary(max_size=300), flip=st.integers(min_value=0, max_value=8 * 96 - 1))
def test_libsodium_accepts_what_openssl_signs_and_refuses_any_flipped_bit(
    message: bytes, flip: int
) -> None:
    """The signatures `cryptography` (OpenSSL) makes verify; one bit changed in the signature or
    the key does not, nor does a changed message, and OpenSSL agrees on every one."""
    signature = ALICE.sign(message)
    assert verify_signature(ALICE.identity_key, signature, message)
    assert not verify_signature(ALICE.identity_key, signature, message + b"!")
    both = bytearray(signature + ALICE.identity_key)
    both[flip // 8] ^= 1 << (flip % 8)
    bad_signature, bad_key = bytes(both[:64]), bytes(both[64:])
    assert not verify_signature(bad_key, bad_signature, message)
    with pytest.raises((InvalidSignature, ValueError)):
        Ed25519PublicKey.from_public_bytes(bad_key).verify(bad_signature, message)


def test_a_non_canonical_signature_and_a_small_order_key_are_refused() -> None:
    message = b"flame"
    signature = ALICE.sign(message)
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + ORDER_L).to_bytes(32, "little")  # the same S, mod L
    assert not verify_signature(ALICE.identity_key, malleated, message)
    identity_point = (1).to_bytes(32, "little")  # of order 1: "verifies" anything with R = it
    forged = identity_point + bytes(32)
    assert not verify_signature(identity_point, forged, message)
    assert not verify_signature(b"\x00" * 31, signature, message)  # wrong lengths: no, not raises
    assert not verify_signature(ALICE.identity_key, signature[:63], message)

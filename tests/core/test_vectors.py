"""The known-answer vectors of docs/PROTOCOL.md §10, checked three ways: recomputed with the real
code, recomputed from the document's construction with bare primitives (tests/core/spec.py), and
the vector envelope opened with the recipient's key.

A deliberate wire change means regenerating the vectors: .venv/bin/python tools/gen_vectors.py
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from flame.core import envelope as envelope_rules
from flame.core.crypto import (
    Identity,
    KdfParams,
    SealedKeystore,
    binding_message,
    fingerprint,
    open_keystore,
    safety_number,
    verify_signature,
)
from flame.core.encoding import b64d, b64e
from flame.core.models import Envelope, EnvelopeBatch, Inner, PresenceRecord
from flame.core.presence import make_presence, presence_fields, verify_presence
from flame.core.signing import (
    SignedRequest,
    enrollment_proof,
    record_message,
    request_string,
    sign_record,
    verify_record,
)
from tests.core import spec

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"
USERS = ("alice", "bob")


def protocol_text() -> str:
    return PROTOCOL.read_text(encoding="utf-8")


def vectors_block(marker: str, section: str) -> dict[str, Any]:
    """The ```json block between `<!-- {marker}:begin ...-->` and its end in PROTOCOL.md, which
    `section` (as "§14.10") names in the failure when it is missing."""
    found = re.search(rf"<!-- {marker}:begin[^>]*-->\s*```json\n(.*?)\n```", protocol_text(), re.S)
    assert found, f"PROTOCOL.md {section} has no ```json block of {marker}"
    vectors: dict[str, Any] = json.loads(found.group(1))
    return vectors


def load_vectors() -> dict[str, Any]:
    """The ```json block of §10 (between the vectors markers)."""
    return vectors_block("vectors", "§10")


VECTORS = load_vectors()
INPUTS: dict[str, Any] = VECTORS["inputs"]
OUTPUTS: dict[str, Any] = VECTORS["outputs"]


def identity(name: str) -> Identity:
    user = INPUTS[name]
    return Identity.from_secret(
        bytes.fromhex(user["ed25519_private_hex"]) + bytes.fromhex(user["x25519_private_hex"])
    )


def x25519_private(name: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(INPUTS[name]["x25519_private_hex"]))


def ephemeral() -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(
        bytes.fromhex(INPUTS["envelope"]["ephemeral_private_hex"])
    )


def vector_inner() -> Inner:
    return Inner.model_validate_json(json.dumps(INPUTS["envelope"]["inner"]))


# --- §3: keys, binding, fingerprint, safety number, enrollment proof ---------------------------


@pytest.mark.parametrize("name", USERS)
def test_public_keys_match_the_vectors(name: str) -> None:
    me, out = identity(name), OUTPUTS[name]
    assert me.identity_key.hex() == out["identity_key_hex"]
    assert b64e(me.identity_key) == out["identity_key"]
    assert me.x25519_key.hex() == out["x25519_key_hex"]
    assert b64e(me.x25519_key) == out["x25519_key"]
    # Independently: the raw public keys from the bare primitives.
    seed = bytes.fromhex(INPUTS[name]["ed25519_private_hex"])
    assert (
        Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw().hex()
        == (out["identity_key_hex"])
    )
    assert spec.raw_public(x25519_private(name)).hex() == out["x25519_key_hex"]


@pytest.mark.parametrize("name", USERS)
def test_binding_signature_matches_the_vector(name: str) -> None:
    me, out = identity(name), OUTPUTS[name]
    documented = b"flame/v1/x25519-binding\n" + name.encode() + b"\n" + me.x25519_key  # §3.2
    assert binding_message(name, me.x25519_key) == documented
    assert documented.hex() == out["binding_message_hex"]
    assert b64e(me.binding_signature(name)) == out["x25519_sig"]
    assert verify_signature(me.identity_key, b64d(out["x25519_sig"]), documented)


@pytest.mark.parametrize("name", USERS)
def test_fingerprint_matches_the_vector(name: str) -> None:
    key = identity(name).identity_key
    assert fingerprint(key) == OUTPUTS[name]["fingerprint"]
    digest = hashlib.sha256(b"flame/v1/fingerprint\n" + key).hexdigest()[:32]  # §3.3
    assert OUTPUTS[name]["fingerprint"] == " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def test_safety_number_matches_the_vector_from_both_sides() -> None:
    alice, bob = identity("alice").identity_key, identity("bob").identity_key
    assert safety_number(alice, bob) == OUTPUTS["safety_number"]
    assert safety_number(bob, alice) == OUTPUTS["safety_number"]
    first, second = sorted((alice, bob))  # §3.4
    digest = hashlib.sha512(b"flame/v1/safety-number\n" + first + second).digest()
    groups = [int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 60, 5)]
    assert OUTPUTS["safety_number"] == " ".join(f"{g:05d}" for g in groups)


@pytest.mark.parametrize("name", USERS)
def test_enrollment_proof_matches_the_vector(name: str) -> None:
    me, out = identity(name), OUTPUTS[name]
    fields = enrollment_proof(name, out["identity_key"], out["x25519_key"])
    assert record_message("enroll", fields).decode() == out["enroll_proof_message"]
    assert sign_record(me, "enroll", fields) == out["enroll_proof"]
    assert verify_record(me.identity_key, "enroll", fields, out["enroll_proof"])
    documented = (  # §5.1: context line, then canonical JSON of the three fields
        "flame/v1/enroll\n"
        + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    )
    assert documented == out["enroll_proof_message"]


# --- §6: the envelope ----------------------------------------------------------------------


def test_envelope_matches_the_vector() -> None:
    sealed = envelope_rules.seal(
        identity("alice").exchange,
        "bob",
        identity("bob").x25519_key,
        vector_inner(),
        ephemeral=ephemeral(),
    )
    out = OUTPUTS["envelope"]
    assert sealed.model_dump() == out["envelope"]
    assert sealed.model_dump_json() == out["envelope_json"]
    assert Envelope.model_validate_json(out["envelope_json"]) == sealed


def test_inner_json_and_padding_match_the_vector() -> None:
    out = OUTPUTS["envelope"]
    encoded = envelope_rules.encode_inner(vector_inner())
    assert encoded.decode() == out["inner_json"]
    assert len(encoded) == out["inner_json_bytes"]
    assert len(envelope_rules.pad(encoded)) == out["padded_bytes"] == 256
    assert len(bytes.fromhex(out["ct"])) == out["padded_bytes"] + 16
    # §6.4: compact, fields in the documented order, non-ASCII unescaped.
    assert list(json.loads(encoded)) == ["from", "to", "id", "seq", "ts", "kind", "body"]
    assert "🔥".encode() in encoded


def test_envelope_intermediates_follow_the_documented_construction() -> None:
    """h, es, k1, sk, h2, ss, k2 and ct recomputed from §6.1-6.3 with bare primitives."""
    out = OUTPUTS["envelope"]
    bob_key = identity("bob").x25519_key
    inner = INPUTS["envelope"]["inner"]
    envelope_id = spec.unb64u(inner["id"])
    trace = spec.seal_from(
        x25519_private("alice"),
        bob_key,
        envelope_id,
        "bob",
        out["inner_json"].encode(),
        ephemeral=ephemeral(),
    )
    eph = bytes.fromhex(out["eph_hex"])
    layout = b"flame/v1/envelope\x00" + b"\x01" + envelope_id + b"\x00\x03" + b"bob" + eph + bob_key
    assert layout.hex() == out["header_hash_input_hex"]
    assert hashlib.sha256(layout).digest() == trace.h
    assert trace.eph.hex() == out["eph_hex"]
    assert trace.h.hex() == out["h"]
    assert trace.es.hex() == out["es"]
    assert trace.k1.hex() == out["k1"]
    assert trace.sk.hex() == out["sk"]
    assert trace.h2.hex() == out["h2"]
    assert trace.ss.hex() == out["ss"]
    assert trace.k2.hex() == out["k2"]
    assert trace.ct.hex() == out["ct"]
    assert trace.envelope(1, envelope_id, "bob") == out["envelope"]


def test_the_code_computes_the_same_intermediates() -> None:
    out = OUTPUTS["envelope"]
    envelope_id = b64d(INPUTS["envelope"]["inner"]["id"])
    eph = bytes.fromhex(out["eph_hex"])
    bob_key = identity("bob").x25519_key
    h = envelope_rules.header_hash(1, envelope_id, "bob", eph, bob_key)
    assert h.hex() == out["h"]
    es, ss = bytes.fromhex(out["es"]), bytes.fromhex(out["ss"])
    assert envelope_rules._hkdf(es, h, envelope_rules.INFO_ES).hex() == out["k1"]
    h2 = bytes.fromhex(out["h2"])
    assert envelope_rules._hkdf(es + ss, h2, envelope_rules.INFO_SS).hex() == out["k2"]


def test_vector_envelope_opens_with_bobs_key() -> None:
    out = OUTPUTS["envelope"]
    envelope = Envelope.model_validate_json(out["envelope_json"])
    opened = envelope_rules.open_envelope(identity("bob").exchange, "bob", envelope)
    assert opened.sender_key == identity("alice").x25519_key
    assert opened.inner == vector_inner()
    # And by the document alone: S, then the padded inner message.
    sender_key, padded = spec.open_padded(x25519_private("bob"), out["envelope"])
    assert sender_key.hex() == OUTPUTS["alice"]["x25519_key_hex"]
    assert padded == out["inner_json"].encode() + b" " * (256 - out["inner_json_bytes"])
    k2 = bytes.fromhex(out["k2"])
    assert ChaCha20Poly1305(k2).decrypt(
        bytes(12), bytes.fromhex(out["ct"]), bytes.fromhex(out["h2"])
    )


# --- §4: the signed request ---------------------------------------------------------------


def test_request_string_and_signature_match_the_vector() -> None:
    req, out = INPUTS["request"], OUTPUTS["request"]
    envelope = Envelope.model_validate(OUTPUTS["envelope"]["envelope"])
    body = EnvelopeBatch(envelopes=[envelope]).model_dump_json().encode()
    assert body.decode() == out["body"]
    assert hashlib.sha256(body).hexdigest() == out["body_sha256"]
    message = request_string(
        req["method"],
        req["path_qs"],
        req["host"],
        req["user"],
        req["audience"],
        req["timestamp"],
        req["nonce"],
        body,
    )
    documented = "\n".join(  # §4.2: nine lines, no trailing newline
        [
            "FLAME-REQUEST-V1",
            req["method"],
            req["path_qs"],
            req["host"],
            req["user"],
            req["audience"],
            str(req["timestamp"]),
            req["nonce"],
            out["body_sha256"],
        ]
    )
    assert message.decode() == documented == out["string"]
    assert b64e(identity("alice").sign(message)) == out["signature"]
    assert out["headers"]["Flame-Signature"] == out["signature"]


def test_vector_request_verifies_as_bob_would() -> None:
    req, out = INPUTS["request"], OUTPUTS["request"]
    signed = SignedRequest.from_headers(out["headers"])
    signed.check(
        identity("alice").identity_key,
        method=req["method"],
        path_qs=req["path_qs"],
        host=req["host"],
        expected_audience="bob",
        body=out["body"].encode(),
        now=req["timestamp"] + 1,
        not_before=req["timestamp"] - 60,
    )


# --- §5.3: presence ------------------------------------------------------------------------


def test_presence_signature_matches_the_vector() -> None:
    fields, out = INPUTS["presence"], OUTPUTS["presence"]
    record = make_presence(
        identity("alice"),
        fields["username"],
        fields["address"],
        fields["status"],
        fields["versions"],
        fields["ts"],
        tls=b64d(fields["tls"]),
    )
    assert record.sig == out["sig"]
    assert record.model_dump_json() == out["record_json"]
    assert record_message("presence", presence_fields(record)).decode() == out["message"]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    assert out["message"] == "flame/v1/presence\n" + canonical
    parsed = PresenceRecord.model_validate_json(out["record_json"])
    assert verify_presence(parsed, identity("alice").identity_key)
    assert not verify_presence(parsed, identity("bob").identity_key)


# --- §3.6: the keystore --------------------------------------------------------------------


def test_keystore_vector_opens_to_alices_keys_and_the_database_key() -> None:
    ks, out = INPUTS["keystore"], OUTPUTS["keystore"]
    salt, nonce = bytes.fromhex(ks["salt_hex"]), bytes.fromhex(ks["nonce_hex"])
    key = Argon2id(
        salt=salt,
        length=32,
        iterations=ks["iterations"],
        lanes=ks["lanes"],
        memory_cost=ks["memory_kib"],
    ).derive(ks["password"].encode())
    assert key.hex() == out["key"]
    aad = b"flame/v1/keystore\n" + ks["username"].encode()
    secret = ChaCha20Poly1305(key).decrypt(nonce, bytes.fromhex(out["ciphertext"]), aad)
    db_key = bytes.fromhex(ks["db_key_hex"])
    assert secret == identity("alice").secret() + db_key  # §3.6: ed25519 || x25519 || db key
    assert secret.hex() == out["plaintext"] and len(secret) == 96
    sealed = SealedKeystore(
        salt,
        nonce,
        bytes.fromhex(out["ciphertext"]),
        KdfParams(ks["memory_kib"], ks["iterations"], ks["lanes"]),
    )
    opened = open_keystore(sealed, ks["username"], ks["password"])
    assert opened.identity.identity_key == identity("alice").identity_key
    assert opened.identity.x25519_key == identity("alice").x25519_key
    assert opened.db_key == db_key

"""An independent implementation of the envelope construction, written from docs/PROTOCOL.md §6
with bare primitives (hashlib, hmac, X25519, ChaCha20-Poly1305) and nothing from flame.core.

The tests compare it with flame.core.envelope, so the document and the code check each other, and
use it to build envelopes that an honest sender never would (a mismatched inner id, a low-order
sender key) to see that the receiver refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

HEADER_CONTEXT = b"flame/v1/envelope" + b"\x00"
INFO_ES = b"flame/v1 es"
INFO_SS = b"flame/v1 ss"
ZERO_NONCE = b"\x00" * 12
BLOCK = 256


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def x25519(private: X25519PrivateKey, public: bytes) -> bytes:
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def header_hash(v: int, envelope_id: bytes, to: str, eph: bytes, recipient_key: bytes) -> bytes:
    to_bytes = to.encode("utf-8")
    return hashlib.sha256(
        HEADER_CONTEXT
        + bytes([v])
        + envelope_id
        + len(to_bytes).to_bytes(2, "big")
        + to_bytes
        + eph
        + recipient_key
    ).digest()


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 for a 32-byte output: one HMAC for extract, one block of expand."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def pad(plaintext: bytes) -> bytes:
    return plaintext + b" " * (-len(plaintext) % BLOCK)


@dataclass(frozen=True)
class Trace:
    """Every value §6.2 names, for one envelope."""

    eph: bytes
    h: bytes
    es: bytes
    k1: bytes
    sk: bytes
    h2: bytes
    ss: bytes
    k2: bytes
    ct: bytes

    def envelope(self, v: int, envelope_id: bytes, to: str) -> dict[str, object]:
        return {
            "v": v,
            "id": b64u(envelope_id),
            "to": to,
            "eph": b64u(self.eph),
            "sk": b64u(self.sk),
            "ct": b64u(self.ct),
        }


def seal(
    *,
    ephemeral: X25519PrivateKey,
    sender_key: bytes,
    ss: bytes,
    recipient_key: bytes,
    envelope_id: bytes,
    to: str,
    plaintext: bytes,
    v: int = 1,
    padded: bool = True,
) -> Trace:
    """§6.2 step by step. `sender_key` (S) and `ss` are given separately so that a test can seal
    a sender key nobody holds the private key of (what a forger would try)."""
    eph = raw_public(ephemeral)
    h = header_hash(v, envelope_id, to, eph, recipient_key)
    es = x25519(ephemeral, recipient_key)
    k1 = hkdf_sha256(es, h, INFO_ES)
    sk = ChaCha20Poly1305(k1).encrypt(ZERO_NONCE, sender_key, h)
    h2 = hashlib.sha256(h + sk).digest()
    k2 = hkdf_sha256(es + ss, h2, INFO_SS)
    body = pad(plaintext) if padded else plaintext
    ct = ChaCha20Poly1305(k2).encrypt(ZERO_NONCE, body, h2)
    return Trace(eph, h, es, k1, sk, h2, ss, k2, ct)


def seal_from(
    sender: X25519PrivateKey,
    recipient_key: bytes,
    envelope_id: bytes,
    to: str,
    plaintext: bytes,
    *,
    ephemeral: X25519PrivateKey | None = None,
    v: int = 1,
) -> Trace:
    """What an honest sender does, with the sender's static key pair."""
    return seal(
        ephemeral=ephemeral or X25519PrivateKey.generate(),
        sender_key=raw_public(sender),
        ss=x25519(sender, recipient_key),
        recipient_key=recipient_key,
        envelope_id=envelope_id,
        to=to,
        plaintext=plaintext,
        v=v,
    )


def open_padded(recipient: X25519PrivateKey, envelope: dict[str, object]) -> tuple[bytes, bytes]:
    """The receiver's side of §6.2: (S, padded plaintext). Raises on any failure."""
    envelope_id = unb64u(str(envelope["id"]))
    eph = unb64u(str(envelope["eph"]))
    sk = unb64u(str(envelope["sk"]))
    ct = unb64u(str(envelope["ct"]))
    v = envelope["v"]
    assert isinstance(v, int)
    h = header_hash(v, envelope_id, str(envelope["to"]), eph, raw_public(recipient))
    es = x25519(recipient, eph)
    sender_key = ChaCha20Poly1305(hkdf_sha256(es, h, INFO_ES)).decrypt(ZERO_NONCE, sk, h)
    h2 = hashlib.sha256(h + sk).digest()
    ss = x25519(recipient, sender_key)
    padded = ChaCha20Poly1305(hkdf_sha256(es + ss, h2, INFO_SS)).decrypt(ZERO_NONCE, ct, h2)
    return sender_key, padded

"""Olm, written from docs/PROTOCOL.md §14.5 with bare primitives (X25519, HKDF-SHA-256,
HMAC-SHA-256, AES-256-CBC) and nothing from flame.core or vodozemac: the handshake, the ratchet
steps, the chains, the message bytes, and the libolm pickle format (§14.10) that lets vodozemac
load an account or a session built from fixed keys.

tools/gen_vectors_v2.py uses it to write the deterministic Olm vectors of §14.10, and
tests/core/test_vectors_olm.py checks them twice: recomputed here, and produced and opened by
vodozemac itself (which never sees these derivations, only the keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ZERO_SALT = b"\x00" * 32
OLM_VERSION = 0x03
MAC_LEN = 8
ACCOUNT_PICKLE_VERSION = 4
SESSION_PICKLE_VERSION = 1


def public(secret: bytes) -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(secret)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def dh(secret: bytes, their_public: bytes) -> bytes:
    mine = X25519PrivateKey.from_private_bytes(secret)
    return mine.exchange(X25519PublicKey.from_public_bytes(their_public))


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def hmac256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


# --- the handshake and the ratchet (§14.5) -------------------------------------------------------


def shared_secret(i_a: bytes, e_a: bytes, i_b_pub: bytes, k_b_pub: bytes) -> bytes:
    """S as alice computes it: X25519(i_A, K_B) || X25519(e_A, I_B) || X25519(e_A, K_B)."""
    return dh(i_a, k_b_pub) + dh(e_a, i_b_pub) + dh(e_a, k_b_pub)


def root(secret: bytes) -> tuple[bytes, bytes]:
    """R_0, C_0 from S."""
    out = hkdf(ZERO_SALT, secret, b"OLM_ROOT", 64)
    return out[:32], out[32:]


def ratchet_step(root_key: bytes, t_prev: bytes, t_new_pub: bytes) -> tuple[bytes, bytes]:
    """R_i, C_i from R_{i-1} and X25519(t_{i-1}, T_i) (either side's view gives the same)."""
    out = hkdf(root_key, dh(t_prev, t_new_pub), b"OLM_RATCHET", 64)
    return out[:32], out[32:]


def chain_at(chain_key: bytes, index: int) -> bytes:
    """C_{i,index}: the chain key advanced `index` times by HMAC(C, 0x02)."""
    for _ in range(index):
        chain_key = hmac256(chain_key, b"\x02")
    return chain_key


def message_key(chain_key: bytes) -> bytes:
    return hmac256(chain_key, b"\x01")


@dataclass(frozen=True)
class MessageKeys:
    aes_key: bytes
    mac_key: bytes
    iv: bytes


def message_keys(key: bytes, info: bytes = b"OLM_KEYS") -> MessageKeys:
    """AES_KEY || HMAC_KEY || IV = HKDF(32 zero bytes, key, info, 80)."""
    out = hkdf(ZERO_SALT, key, info, 80)
    return MessageKeys(out[:32], out[32:64], out[64:])


def aes_cbc(keys: MessageKeys, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(keys.aes_key), modes.CBC(keys.iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


# --- message bytes (§14.5) -----------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(tag: int, data: bytes) -> bytes:
    return bytes([tag]) + varint(len(data)) + data


def normal_message(ratchet_pub: bytes, index: int, chain_key: bytes, plaintext: bytes) -> bytes:
    """A type 1 message: the `index`-th of the chain whose key at 0 is `chain_key`."""
    keys = message_keys(message_key(chain_at(chain_key, index)))
    body = (
        bytes([OLM_VERSION])
        + field(0x0A, ratchet_pub)
        + bytes([0x10])
        + varint(index)
        + field(0x22, aes_cbc(keys, plaintext))
    )
    return body + hmac256(keys.mac_key, body)[:MAC_LEN]


def prekey_message(k_b_pub: bytes, e_a_pub: bytes, i_a_pub: bytes, normal: bytes) -> bytes:
    return (
        bytes([OLM_VERSION])
        + field(0x0A, k_b_pub)
        + field(0x12, e_a_pub)
        + field(0x1A, i_a_pub)
        + field(0x22, normal)
    )


def session_id(i_a_pub: bytes, e_a_pub: bytes, k_b_pub: bytes) -> str:
    """SHA-256(I_A || E_A || K_B), standard base64 without padding (§14.4)."""
    digest = hashlib.sha256(i_a_pub + e_a_pub + k_b_pub).digest()
    return base64.b64encode(digest).decode().rstrip("=")


# --- libolm pickles (§14.10): big-endian u32, bytes as they are, u32-counted lists ---------------


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def seal_pickle(plain: bytes, key: bytes) -> str:
    """AES-256-CBC under HKDF(0x00, key, "Pickle", 80), then the first 8 bytes of the HMAC of the
    ciphertext; standard base64 without padding."""
    keys = message_keys(key, b"Pickle")
    sealed = aes_cbc(keys, plain)
    sealed += hmac256(keys.mac_key, sealed)[:MAC_LEN]
    return base64.b64encode(sealed).decode().rstrip("=")


def ed25519_expanded(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, the 64-byte expanded secret of RFC 8032 §5.1.5: clamped scalar || prefix)."""
    digest = bytearray(hashlib.sha512(seed).digest())
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    pub = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return pub, bytes(digest)


def account_pickle(
    ed25519_seed: bytes, identity: bytes, one_time: list[tuple[int, bytes]], key: bytes
) -> str:
    """An Olm account holding `identity` (a Curve25519 secret) and the one-time secrets given
    with their key ids, all published; no fallback key."""
    ed_pub, ed_secret = ed25519_expanded(ed25519_seed)
    plain = u32(ACCOUNT_PICKLE_VERSION) + ed_pub + ed_secret + public(identity) + identity
    plain += u32(len(one_time))
    for key_id, secret in one_time:
        plain += u32(key_id) + b"\x01" + public(secret) + secret
    plain += b"\x00"  # no fallback keys
    plain += u32(max((key_id for key_id, _ in one_time), default=0))
    return seal_pickle(plain, key)


@dataclass(frozen=True)
class Chain:
    ratchet_pub: bytes
    chain_key: bytes  # at `index`
    index: int
    ratchet_secret: bytes | None = None  # set on a sender chain


def session_pickle(
    keys: tuple[bytes, bytes, bytes],
    root_key: bytes,
    sender: Chain | None,
    receivers: list[Chain],
    key: bytes,
) -> str:
    """An Olm session: (I_A, E_A, K_B), the root key, the sending chain and the receiving chains
    (newest first), no skipped message keys."""
    plain = u32(SESSION_PICKLE_VERSION) + (b"\x01" if receivers else b"\x00")
    plain += b"".join(keys) + root_key
    if sender is None:
        plain += u32(0)
    else:
        assert sender.ratchet_secret is not None
        plain += u32(1) + sender.ratchet_pub + sender.ratchet_secret
        plain += sender.chain_key + u32(sender.index)
    plain += u32(len(receivers))
    for chain in receivers:
        plain += chain.ratchet_pub + chain.chain_key + u32(chain.index)
    plain += u32(0)  # no skipped message keys
    return seal_pickle(plain, key)

"""Keys and the small constructions built on them (PROTOCOL.md §3): identity, key binding,
fingerprints, safety numbers, detached signatures, and the password-sealed keystore.

Only `cryptography` primitives are used, except that Ed25519 signatures are verified by
libsodium (PyNaCl): the same Ed25519, checked twice as fast on this kind of machine (docs/
ARCHITECTURE.md, "Choices"). No I/O here.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from flame.errors import BadRequest, WrongPassword

RAW = serialization.Encoding.Raw
RAW_PUB = serialization.PublicFormat.Raw
RAW_PRIV = serialization.PrivateFormat.Raw
NO_ENC = serialization.NoEncryption()

BINDING_CONTEXT = b"flame/v1/x25519-binding\n"
KEYSTORE_CONTEXT = b"flame/v1/keystore\n"


def public_bytes(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(RAW, RAW_PUB)


def ed25519_public(raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise BadRequest("not an Ed25519 public key") from exc


def x25519_public(raw: bytes) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise BadRequest("not an X25519 public key") from exc


def verify_signature(identity_key: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 verification (RFC 8032, by libsodium) that never raises for bad input, only
    answers. libsodium also refuses a non-canonical S and a public key or R of small order."""
    if len(identity_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, identity_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def binding_message(username: str, x25519_key: bytes) -> bytes:
    """What the identity key signs to vouch for the X25519 key: context || username || 0x0A || key."""
    return BINDING_CONTEXT + username.encode() + b"\n" + x25519_key


STATICS_MAX = 4096  # pairs' static-static secrets kept per unlock (cleared when full)


@dataclass(frozen=True, slots=True)
class Identity:
    """A user's two private keys: Ed25519 signs, X25519 receives envelopes."""

    signing: Ed25519PrivateKey
    exchange: X25519PrivateKey
    statics: dict[bytes, bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @classmethod
    def from_secret(cls, secret: bytes) -> Identity:
        if len(secret) != 64:
            raise ValueError("identity secret must be 64 bytes")
        return cls(
            Ed25519PrivateKey.from_private_bytes(secret[:32]),
            X25519PrivateKey.from_private_bytes(secret[32:]),
        )

    def secret(self) -> bytes:
        return self.signing.private_bytes(RAW, RAW_PRIV, NO_ENC) + self.exchange.private_bytes(
            RAW, RAW_PRIV, NO_ENC
        )

    @property
    def identity_key(self) -> bytes:
        return public_bytes(self.signing.public_key())

    @property
    def x25519_key(self) -> bytes:
        return public_bytes(self.exchange.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.signing.sign(message)

    def static_secret(self, their_key: bytes) -> bytes:
        """X25519(our key, `their_key`): the same for every envelope of a pair (PROTOCOL.md
        §6.2), so computed once per peer and kept as long as these keys are (a lock drops
        both). Raises ValueError or BadRequest for a key that is not a usable point."""
        found = self.statics.get(their_key)
        if found is None:
            found = self.exchange.exchange(x25519_public(their_key))
            if len(self.statics) >= STATICS_MAX:
                self.statics.clear()
            self.statics[their_key] = found
        return found

    def binding_signature(self, username: str) -> bytes:
        return self.sign(binding_message(username, self.x25519_key))


def fingerprint(identity_key: bytes) -> str:
    """A short, human-comparable hash of an identity key: 32 hex digits in groups of four."""
    digest = hashlib.sha256(b"flame/v1/fingerprint\n" + identity_key).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def safety_number(identity_key_a: bytes, identity_key_b: bytes) -> str:
    """The pair's safety number: the same 60 digits on both sides (keys taken in sorted order)."""
    first, second = sorted((identity_key_a, identity_key_b))
    digest = hashlib.sha512(b"flame/v1/safety-number\n" + first + second).digest()
    groups = [int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 60, 5)]
    return " ".join(f"{g:05d}" for g in groups)


# --- the keystore: private keys at rest under Argon2id(password) -------------------------------


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost. Stored beside the sealed keys so a later change of defaults still opens them."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 1


@dataclass(frozen=True, slots=True)
class SealedKeystore:
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    params: KdfParams


def _password_key(password: str, salt: bytes, params: KdfParams) -> bytes:
    kdf = Argon2id(
        salt=salt,
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(password.encode())


DB_KEY_BYTES = 32
SECRET_BYTES = 64  # ed25519_private || x25519_private
SEALED_BYTES = SECRET_BYTES + DB_KEY_BYTES  # ... || the database key (PROTOCOL.md §3.6)


@dataclass(frozen=True, slots=True)
class Unsealed:
    """What the password opens: the private keys and the key of the encrypted database. A keystore
    sealed before the database was encrypted holds no database key (None): the first unlock makes
    one and seals both again (PROTOCOL.md §3.6)."""

    identity: Identity
    db_key: bytes | None


def new_db_key() -> bytes:
    return os.urandom(DB_KEY_BYTES)


def seal_keystore(
    identity: Identity, db_key: bytes, username: str, password: str, params: KdfParams
) -> SealedKeystore:
    if len(db_key) != DB_KEY_BYTES:
        raise ValueError("a database key is 32 bytes")
    salt, nonce = os.urandom(16), os.urandom(12)
    key = _password_key(password, salt, params)
    aad = KEYSTORE_CONTEXT + username.encode()
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, identity.secret() + db_key, aad)
    return SealedKeystore(salt, nonce, ciphertext, params)


def open_keystore(sealed: SealedKeystore, username: str, password: str) -> Unsealed:
    """Unlock the private keys and the database key; a wrong password raises WrongPassword and
    unlocks nothing."""
    key = _password_key(password, sealed.salt, sealed.params)
    aad = KEYSTORE_CONTEXT + username.encode()
    try:
        secret = ChaCha20Poly1305(key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except InvalidTag as exc:
        raise WrongPassword("Wrong password.") from exc
    if len(secret) not in (SECRET_BYTES, SEALED_BYTES):
        raise WrongPassword("The keystore holds something other than Flame keys.")
    db_key = secret[SECRET_BYTES:] or None
    return Unsealed(Identity.from_secret(secret[:SECRET_BYTES]), db_key)

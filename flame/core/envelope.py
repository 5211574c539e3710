"""Envelopes: seal and open the messages that travel between daemons. No I/O here.

The protocol in one place (PROTOCOL.md §6 has the byte-exact version and test vectors):

Construction, Noise `X`-like, one-way, from `cryptography` primitives:
    h   = SHA-256("flame/v1/envelope" 0x00 || u8 v || id[16] || u16be len(to) || to || eph[32] || R[32])
    es  = X25519(e, R)                  e: fresh ephemeral key, R: recipient's X25519 key
    k1  = HKDF-SHA256(ikm=es, salt=h, info="flame/v1 es", 32)
    sk  = ChaCha20-Poly1305(k1, nonce=0^12, aad=h).encrypt(S)      S: sender's X25519 public key
    h2  = SHA-256(h || sk)
    ss  = X25519(s, R)
    k2  = HKDF-SHA256(ikm=es || ss, salt=h2, info="flame/v1 ss", 32)
    ct  = ChaCha20-Poly1305(k2, nonce=0^12, aad=h2).encrypt(pad(inner JSON))
Each key encrypts exactly one plaintext (e is never reused), so the zero nonce is safe.
Relays see only `to`, sizes and timing (sealed sender). No identity-key signature touches the body,
so the recipient knows the author (only s or r can compute ss) but cannot prove it: deniable.

Inner message kinds: `text`, `receipt`, `profile_update`, the file kinds (core/models.KIND_BODIES).
Version 2 (PROTOCOL.md §14) seals with `v` 2 in the header hash and one outer kind, `ratchet`,
whose body is an Olm message (core/ratchet.py) carrying the real inner message: sealed sender and
deniability stay exactly as here, the content gains forward secrecy.

Outgoing message states: sending (in the outbox) -> sent (the recipient's daemon answered 2xx after
committing) ; sending -> failed (refused for good, with the reason).
Receiving: verify the request signature, open, check `from` owns S (pinned key), `to` is us, the id
matches the header, deduplicate by id, commit, then answer 2xx and tell the UI.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import ValidationError

from flame.core.crypto import public_bytes, x25519_public
from flame.core.encoding import b64d, b64e, parse_json_object
from flame.core.models import Envelope, Inner
from flame.errors import BadEnvelope, BadRequest, DecryptionFailed

VERSION = 1
VERSIONS = (1, 2)
ID_BYTES = 16
KEY_BYTES = 32
TAG_BYTES = 16
PAD_BLOCK = 256
ZERO_NONCE = bytes(12)
HEADER_CONTEXT = b"flame/v1/envelope\x00"
INFO_ES = b"flame/v1 es"
INFO_SS = b"flame/v1 ss"


def header_hash(v: int, envelope_id: bytes, to: str, eph: bytes, recipient_key: bytes) -> bytes:
    to_bytes = to.encode()
    return hashlib.sha256(
        HEADER_CONTEXT
        + struct.pack(">B", v)
        + envelope_id
        + struct.pack(">H", len(to_bytes))
        + to_bytes
        + eph
        + recipient_key
    ).digest()


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _exchange(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(x25519_public(public))
    except (ValueError, BadRequest) as exc:  # low-order point: all-zero shared secret
        raise DecryptionFailed("The envelope was rejected.") from exc


Statics = Callable[[bytes], bytes]  # their X25519 key -> the pair's static-static secret


def _static(private: X25519PrivateKey, public: bytes, statics: Statics | None) -> bytes:
    """ss of §6.2: from the caller's cache of the pair's secret when it has one."""
    if statics is None:
        return _exchange(private, public)
    try:
        return statics(public)
    except (ValueError, BadRequest) as exc:  # low-order point: all-zero shared secret
        raise DecryptionFailed("The envelope was rejected.") from exc


def pad(plaintext: bytes) -> bytes:
    """Pad JSON with spaces (insignificant to JSON) up to a multiple of 256 bytes: hides length."""
    return plaintext + b" " * (-len(plaintext) % PAD_BLOCK)


def encode_inner(inner: Inner) -> bytes:
    return json.dumps(
        inner.model_dump(by_alias=True), separators=(",", ":"), ensure_ascii=False
    ).encode()


@dataclass(frozen=True, slots=True)
class Opened:
    """An opened envelope: the sender's X25519 key (to check against the pinned one) and the
    inner message."""

    sender_key: bytes
    inner: Inner


def seal(
    sender: X25519PrivateKey,
    recipient: str,
    recipient_key: bytes,
    inner: Inner,
    *,
    ephemeral: X25519PrivateKey | None = None,
    version: int = VERSION,
    statics: Statics | None = None,
) -> Envelope:
    """Seal `inner` to `recipient`. `ephemeral` is for test vectors only; normally fresh.
    Version 2 seals exactly so, with `v` 2 and a `ratchet` inner (PROTOCOL.md §14.4). `statics`
    (the daemon's `Identity.static_secret`) saves the static-static exchange of a known pair."""
    if (version == 2) != (inner.kind == "ratchet"):
        raise ValueError("version 2 seals a ratchet message, and only version 2 does")
    return seal_bytes(
        sender,
        recipient,
        recipient_key,
        message_id_bytes(inner.id),
        encode_inner(inner),
        ephemeral=ephemeral,
        version=version,
        statics=statics,
    )


def message_id_bytes(message_id: str) -> bytes:
    """The envelope id an inner message's id stands for (PROTOCOL.md §6)."""
    return b64d(message_id, length=ID_BYTES, what="message id")


def seal_bytes(
    sender: X25519PrivateKey,
    recipient: str,
    recipient_key: bytes,
    envelope_id: bytes,
    plaintext: bytes,
    *,
    ephemeral: X25519PrivateKey | None = None,
    version: int = VERSION,
    statics: Statics | None = None,
) -> Envelope:
    """Seal any bytes as an inner message (padded): `seal`'s construction, for the tests and the
    fuzzer, which must reach the receiver's parsing of what it opened."""
    eph_private = ephemeral or X25519PrivateKey.generate()
    eph = public_bytes(eph_private.public_key())
    h = header_hash(version, envelope_id, recipient, eph, recipient_key)
    es = _exchange(eph_private, recipient_key)
    k1 = _hkdf(es, h, INFO_ES)
    sk = ChaCha20Poly1305(k1).encrypt(ZERO_NONCE, public_bytes(sender.public_key()), h)
    h2 = hashlib.sha256(h + sk).digest()
    ss = _static(sender, recipient_key, statics)
    k2 = _hkdf(es + ss, h2, INFO_SS)
    ct = ChaCha20Poly1305(k2).encrypt(ZERO_NONCE, pad(plaintext), h2)
    return Envelope(
        v=version, id=b64e(envelope_id), to=recipient, eph=b64e(eph), sk=b64e(sk), ct=b64e(ct)
    )


def open_envelope(
    recipient: X25519PrivateKey,
    me: str,
    envelope: Envelope,
    versions: tuple[int, ...] = (VERSION,),
    statics: Statics | None = None,
) -> Opened:
    """Open an envelope addressed to `me`, of one of the `versions` this daemon accepts.

    Raises BadEnvelope for a malformed header or a wrong recipient, DecryptionFailed for anything
    that fails authentication (peers are told only "rejected", never which step failed).
    """
    if envelope.v not in versions:
        raise BadEnvelope(_refused_version(envelope.v, versions), code=_version_code(envelope.v))
    if envelope.to != me:
        raise BadEnvelope("The envelope is addressed to someone else.", code="wrong_recipient")
    try:
        envelope_id = b64d(envelope.id, length=ID_BYTES, what="id")
        eph = b64d(envelope.eph, length=KEY_BYTES, what="eph")
        sk = b64d(envelope.sk, length=KEY_BYTES + TAG_BYTES, what="sk")
        ct = b64d(envelope.ct, what="ct")
    except BadRequest as exc:
        raise BadEnvelope(f"Malformed envelope: {exc.message}.") from exc
    if len(ct) < TAG_BYTES:
        raise BadEnvelope("Malformed envelope: ct is too short.")
    my_key = public_bytes(recipient.public_key())
    h = header_hash(envelope.v, envelope_id, envelope.to, eph, my_key)
    es = _exchange(recipient, eph)
    try:
        sender_key = ChaCha20Poly1305(_hkdf(es, h, INFO_ES)).decrypt(ZERO_NONCE, sk, h)
        h2 = hashlib.sha256(h + sk).digest()
        ss = _static(recipient, sender_key, statics)
        plaintext = ChaCha20Poly1305(_hkdf(es + ss, h2, INFO_SS)).decrypt(ZERO_NONCE, ct, h2)
    except InvalidTag as exc:
        raise DecryptionFailed("The envelope was rejected.") from exc
    try:
        inner = Inner.model_validate(parse_json_object(plaintext, what="sealed message"))
    except (BadRequest, ValidationError) as exc:
        raise BadEnvelope("The sealed message is malformed.") from exc
    if inner.to != me or inner.id != envelope.id:
        raise BadEnvelope("The sealed message does not match its envelope.")
    if (envelope.v == 2) != (inner.kind == "ratchet"):
        raise BadEnvelope(f"A version {envelope.v} envelope cannot carry kind {inner.kind!r}.")
    return Opened(sender_key=sender_key, inner=inner)


OLD_VERSION = "old_version"


def _version_code(v: int) -> str:
    return OLD_VERSION if v in VERSIONS else "bad_envelope"


def _refused_version(v: int, versions: tuple[int, ...]) -> str:
    if v in VERSIONS:  # known, but refused by this daemon's security.min_version/max_version
        return (
            f"This daemon does not accept protocol version {v}: it speaks only "
            f"{', '.join(map(str, versions))} (PROTOCOL.md §9)."
        )
    return f"Envelope version {v} is not supported."


def new_message_id() -> str:
    return b64e(os.urandom(ID_BYTES))

"""Version 2 (PROTOCOL.md §14): Olm sessions (vodozemac, the audited Rust implementation Matrix
uses) inside the version 1 envelope, the signed prekeys they start from, the pickle key that
seals their state at rest, and the pair key that authenticates requests deniably. No I/O here.

Everything that mutates ratchet state works on a copy made from a pickle and returns the new
pickle: the caller persists it in the transaction that stores what it encrypted or decrypted
(§14.6), so a failure or a crash never leaves a consumed key without its message.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Literal

import vodozemac
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flame.core.crypto import Identity, x25519_public
from flame.core.encoding import b64d, b64e, parse_json_object
from flame.core.models import Inner, RatchetBody
from flame.core.prekeys import PrekeyRecord, sign_prekey
from flame.errors import BadEnvelope, BadRequest, DecryptionFailed

PICKLE_INFO = b"flame/v2/pickle-key\n"
PAIR_INFO = b"flame/v2/request-mac\n"
PRE_KEY: Literal[0] = 0
NORMAL: Literal[1] = 1
# vodozemac's own bounds (PROTOCOL.md §14.5): a receiving chain keeps at most 40 skipped message
# keys, a session at most 5 receiving chains, and a message more than 2000 ahead of its chain is
# refused. A skipped key is deleted when it is used, or when newer ones push it out.
MAX_SKIPPED_PER_CHAIN = 40
MAX_RECEIVING_CHAINS = 5
MAX_MESSAGE_GAP = 2000
# One-time keys kept at the directory: refilled below LOW, up to TARGET (PROTOCOL.md §14.3). The
# account keeps the private halves of thousands of unused ones, so a key claimed at the directory
# still opens its first message long after a later refill.
PREKEYS_TARGET = 25
PREKEYS_LOW = 10


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def pickle_key(identity: Identity, username: str) -> bytes:
    """The key that seals the Olm account and sessions at rest (PROTOCOL.md §14.7)."""
    return _hkdf(identity.secret(), PICKLE_INFO + username.encode())


def pair_key(mine: X25519PrivateKey, me: str, their_key: bytes, them: str) -> bytes:
    """The request MAC key of a pair (PROTOCOL.md §14.8): both sides compute the same one, so a MAC
    proves nothing to a third party."""
    try:
        shared = mine.exchange(x25519_public(their_key))
    except (ValueError, BadRequest) as exc:
        raise DecryptionFailed("The pair key cannot be derived.") from exc
    first, second = sorted((me, them))
    return _hkdf(shared, PAIR_INFO + f"{first}\n{second}".encode())


def request_mac(key: bytes, request_string: bytes) -> bytes:
    return hmac.digest(key, request_string, "sha256")


# --- the account and its prekeys -----------------------------------------------------------------


def new_account() -> vodozemac.Account:
    return vodozemac.Account()


def account_identity(account: vodozemac.Account) -> str:
    """The account's Curve25519 identity key, base64url as on Flame's wire."""
    return b64e(account.curve25519_key.to_bytes())


def fresh_prekeys(
    account: vodozemac.Account, identity: Identity, username: str, count: int
) -> tuple[list[PrekeyRecord], PrekeyRecord | None]:
    """Up to `count` unpublished one-time keys (new ones made for what is missing: a publication
    that failed leaves its keys unpublished, and they go next time) and an unpublished fallback
    key (a new one once the last was published; the account keeps the previous one too, for
    sessions that started from it), all signed. The caller persists the account BEFORE it
    publishes them (a published key whose private half was lost could never open the message
    that uses it), and marks them published after."""
    missing = count - len(account.one_time_keys)
    if missing > 0:
        account.generate_one_time_keys(missing)
    if not account.fallback_key:  # type: ignore[attr-defined]  # missing from 0.10's stubs
        account.generate_fallback_key()  # type: ignore[attr-defined]  # as above
    mine = account_identity(account)
    one_time = [
        sign_prekey(identity, username, mine, b64e(key.to_bytes()), fallback=False)
        for key in list(account.one_time_keys.values())[:count]
    ]
    fallback = [
        sign_prekey(identity, username, mine, b64e(key.to_bytes()), fallback=True)
        for key in account.fallback_key.values()  # type: ignore[attr-defined]  # as above
    ]
    return one_time, (fallback[0] if fallback else None)


# --- sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sealed:
    """A ratchet message and the session state after it (to persist with the envelope)."""

    body: RatchetBody
    session_id: str
    pickle: str


@dataclass(frozen=True, slots=True)
class Opened:
    """A decrypted ratchet message: the inner message and the new states to persist with it."""

    inner: Inner
    session_id: str
    pickle: str
    account_pickle: str | None  # set when a prekey message consumed a one-time key


@dataclass(frozen=True, slots=True)
class OpenedLive:
    """A decrypted ratchet message and the live session that opened it, not yet pickled: the
    caller pickles each session once, after the last message of a batch it opened."""

    inner: Inner
    plaintext: bytes  # the inner message's JSON as its author sealed it (parsed strictly)
    session: vodozemac.Session
    account_pickle: str | None  # set when a prekey message consumed a one-time key


def outbound(account: vodozemac.Account, key: bytes, prekey: PrekeyRecord) -> tuple[str, str]:
    """A new session from a claimed, verified prekey: (its id, its pickle)."""
    try:
        session = account.create_outbound_session(
            vodozemac.Curve25519PublicKey.from_bytes(b64d(prekey.identity, length=32)),
            vodozemac.Curve25519PublicKey.from_bytes(b64d(prekey.key, length=32)),
        )
    except (vodozemac.KeyException, BadRequest) as exc:
        raise BadRequest("The claimed prekey is not a Curve25519 key.") from exc
    return session.session_id, session.pickle(key)


def session_from(pickle: str, key: bytes) -> vodozemac.Session:
    return vodozemac.Session.from_pickle(pickle, key)


@dataclass(eq=False)
class Unpickled:
    """Sessions kept unpickled, each beside the pickle it stands for: `take` hands one out (and
    forgets it) if that pickle is still the state to use, else unpickles the state; `keep`
    puts one back once its new state is the one to use (sent, or committed)."""

    held: dict[tuple[str, str], tuple[str, vodozemac.Session]] = field(default_factory=dict)

    def take(self, where: tuple[str, str], pickle: str, key: bytes) -> vodozemac.Session:
        found = self.held.pop(where, None)
        return found[1] if found is not None and found[0] == pickle else session_from(pickle, key)

    def keep(self, where: tuple[str, str], pickle: str, session: vodozemac.Session) -> None:
        self.held[where] = (pickle, session)

    def forget(self, peer: str) -> None:
        for where in [w for w in self.held if w[0] == peer]:
            del self.held[where]


def encrypt(session: vodozemac.Session, key: bytes, my_identity: str, plaintext: bytes) -> Sealed:
    """Encrypt with `session` (advanced in place) and return the message and the new state."""
    body = encrypt_body(session, my_identity, plaintext)
    return Sealed(body, body.session, session.pickle(key))


def encrypt_body(session: vodozemac.Session, my_identity: str, plaintext: bytes) -> RatchetBody:
    """Encrypt with `session` (advanced in place); its new state is pickled by the caller, once
    for all it sealed before the transaction that stores them (PROTOCOL.md §14.6)."""
    message_type, ciphertext = session.encrypt(plaintext).to_parts()
    prekey = message_type == PRE_KEY
    return RatchetBody.model_construct(  # our own values: nothing here to validate
        session=session.session_id,
        type=PRE_KEY if prekey else NORMAL,
        identity=my_identity if prekey else None,
        ciphertext=b64e(ciphertext),
    )


def encrypt_outer(
    session: vodozemac.Session, my_identity: str, inner: Inner, plaintext: bytes
) -> bytes:
    """Encrypt `plaintext` (`inner`'s JSON) with `session` (advanced in place) and return the
    JSON of the outer inner message that seals it (§14.4): the bytes of
    `encode_inner(outer(inner, encrypt_body(...)))`, written directly (a test keeps them so),
    without building and serialising two models per message. Every value is our own: names
    and ids already checked, the rest base64."""
    message_type, ciphertext = session.encrypt(plaintext).to_parts()
    prekey = message_type == PRE_KEY
    body: dict[str, object] = {"session": session.session_id, "type": PRE_KEY if prekey else NORMAL}
    if prekey:
        body["identity"] = my_identity
    body["ciphertext"] = b64e(ciphertext)
    fields = {"from": inner.from_, "to": inner.to, "id": inner.id, "seq": 0, "ts": 0}
    return json.dumps(
        {**fields, "kind": "ratchet", "body": body}, separators=(",", ":"), ensure_ascii=False
    ).encode()


def outer(inner: Inner, body: RatchetBody) -> Inner:
    """The inner message a version 2 envelope seals: `inner`'s addressing, kind `ratchet` (§14.4)."""
    return Inner(
        from_=inner.from_, to=inner.to, id=inner.id, seq=0, ts=0, kind="ratchet", body=body
    )


def _inner(plaintext: bytes, author: str, me: str, envelope_id: str) -> Inner:
    try:  # the one strict parser of untrusted JSON (PROTOCOL.md §1.3)
        inner = Inner.model_validate(parse_json_object(plaintext, what="ratchet message"))
    except (BadRequest, ValueError) as exc:
        raise BadEnvelope("The ratchet message is malformed.") from exc
    if inner.from_ != author or inner.to != me or inner.id != envelope_id:
        raise BadEnvelope("The ratchet message does not match its envelope.")
    if inner.kind == "ratchet":
        raise BadEnvelope("A ratchet message cannot carry another.")
    return inner


def body_of(outer: Inner) -> RatchetBody:
    """The ratchet message of a version 2 envelope's outer inner message (§14.4)."""
    if not isinstance(outer.body, RatchetBody):
        raise BadEnvelope("A version 2 envelope carries a ratchet message.")
    return outer.body


def no_session() -> DecryptionFailed:
    return DecryptionFailed(
        "No session here opens this message; start a new one.", code="no_session", status=409
    )


def decrypt(
    session: vodozemac.Session | None,
    account: vodozemac.Account | None,
    key: bytes,
    body: RatchetBody,
    outer: Inner,
) -> Opened:
    """`decrypt_live`, and the new state pickled."""
    opened = decrypt_live(session, account, key, body, outer)
    session_id = opened.session.session_id
    return Opened(opened.inner, session_id, opened.session.pickle(key), opened.account_pickle)


def decrypt_live(
    session: vodozemac.Session | None,
    account: vodozemac.Account | None,
    key: bytes,
    body: RatchetBody,
    outer: Inner,
) -> OpenedLive:
    """Decrypt with `session` (or `account` for a prekey message that starts one), loaded from
    the last state this process produced. A failed decryption leaves `session` as it was
    (vodozemac computes a message key on a copy of the chain and keeps it only once the message
    authenticated; tests/core/test_ratchet.py checks it); the account is a copy, thrown away on
    any failure.

    Raises DecryptionFailed("no_session") when nothing here can open it: the sender's state and
    ours diverged, and the session is reset (PROTOCOL.md §14.9)."""
    try:
        ciphertext = b64d(body.ciphertext, what="ciphertext")
        message = vodozemac.AnyOlmMessage.from_parts(body.type, ciphertext)
    except (BadRequest, vodozemac.DecodeException, ValueError) as exc:
        raise BadEnvelope("The ratchet message is malformed.") from exc
    account_pickle = None
    try:
        if session is not None:
            plaintext = session.decrypt(message)
        else:
            prekey = message.to_pre_key()
            if prekey is None or body.identity is None or account is None:
                raise no_session()
            sender = vodozemac.Curve25519PublicKey.from_bytes(b64d(body.identity, length=32))
            session, plaintext = account.create_inbound_session(sender, prekey)
            if session.session_id != body.session:
                raise no_session()
            account_pickle = account.pickle(key)
    except (
        vodozemac.OlmDecryptionException,
        vodozemac.SessionCreationException,
        vodozemac.DecodeException,
        vodozemac.KeyException,
        BadRequest,
    ) as exc:
        raise no_session() from exc
    inner = _inner(plaintext, outer.from_, outer.to, outer.id)
    return OpenedLive(inner, plaintext, session, account_pickle)

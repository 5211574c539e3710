"""Signed requests between machines (PROTOCOL.md §4) and signed records (§5). No I/O here.

Every daemon->daemon and daemon->directory call carries the caller's Ed25519 signature over:

    FLAME-REQUEST-V1\n METHOD\n PATH?QUERY\n HOST\n USER\n AUDIENCE\n TIMESTAMP\n NONCE\n SHA256HEX(BODY)

AUDIENCE (header Flame-To) names who the request is for (a username, or "directory"); the receiver
refuses requests meant for someone else, so a signed request cannot be replayed against another
machine. The receiver also checks a ±300 s window and a nonce cache.

Version 2 between peers (PROTOCOL.md §14.8) replaces the signature by Flame-Mac, an HMAC-SHA256
of the same lines (first line FLAME-REQUEST-V2) under the pair's static-static key: both sides
could have made it, so a kept request proves nothing to anyone else (deniable). The directory and
signed records keep Ed25519.

A streamed body (file chunks, PROTOCOL.md §11.4) is signed as the literal UNSIGNED-PAYLOAD instead
of its hash: its bytes are authenticated chunk by chunk by their AEAD. Only routes that declare
it accept such a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flame.core.crypto import Identity, verify_signature
from flame.core.encoding import b64d, b64e, canonical_json
from flame.errors import AuthError, BadRequest

REQUEST_CONTEXT = "FLAME-REQUEST-V1"
REQUEST_CONTEXT_MAC = "FLAME-REQUEST-V2"
MAX_SKEW_S = 300
HEADER_USER = "Flame-User"
HEADER_TO = "Flame-To"
HEADER_TIME = "Flame-Timestamp"
HEADER_NONCE = "Flame-Nonce"
HEADER_SIG = "Flame-Signature"
HEADER_MAC = "Flame-Mac"
DIRECTORY_AUDIENCE = "directory"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def request_string(
    method: str,
    path_qs: str,
    host: str,
    user: str,
    audience: str,
    timestamp: int,
    nonce: str,
    body: bytes,
    *,
    unsigned_body: bool = False,
    context: str = REQUEST_CONTEXT,
) -> bytes:
    parts = [
        context,
        method.upper(),
        path_qs,
        host,
        user,
        audience,
        str(timestamp),
        nonce,
        UNSIGNED_PAYLOAD if unsigned_body else hashlib.sha256(body).hexdigest(),
    ]
    # The bytes as they travelled: an HTTP server hands over header bytes that are not UTF-8 as
    # lone surrogates (surrogateescape), and this gives back exactly those bytes.
    return "\n".join(parts).encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a request's authentication covers (PROTOCOL.md §4.2), before it is signed or MACed."""

    user: str
    audience: str
    method: str
    path_qs: str
    host: str
    body: bytes
    timestamp: int
    unsigned_body: bool = False

    def headers(self, name: str, proof: Callable[[bytes], bytes], context: str) -> dict[str, str]:
        """The five headers, `name` carrying `proof` of the request string under `context`."""
        nonce = b64e(os.urandom(16))
        message = request_string(
            self.method,
            self.path_qs,
            self.host,
            self.user,
            self.audience,
            self.timestamp,
            nonce,
            self.body,
            unsigned_body=self.unsigned_body,
            context=context,
        )
        return {
            HEADER_USER: self.user,
            HEADER_TO: self.audience,
            HEADER_TIME: str(self.timestamp),
            HEADER_NONCE: nonce,
            name: b64e(proof(message)),
        }


def sign_request(
    identity: Identity,
    user: str,
    audience: str,
    method: str,
    path_qs: str,
    host: str,
    body: bytes,
    timestamp: int,
    *,
    unsigned_body: bool = False,
) -> dict[str, str]:
    request = Outgoing(user, audience, method, path_qs, host, body, timestamp, unsigned_body)
    return request.headers(HEADER_SIG, identity.sign, REQUEST_CONTEXT)


def mac_request(
    pair_key: bytes,
    user: str,
    audience: str,
    method: str,
    path_qs: str,
    host: str,
    body: bytes,
    timestamp: int,
    *,
    unsigned_body: bool = False,
) -> dict[str, str]:
    """Headers of a version 2 peer request, authenticated by the pair key (PROTOCOL.md §14.8)."""
    request = Outgoing(user, audience, method, path_qs, host, body, timestamp, unsigned_body)
    return request.headers(
        HEADER_MAC, lambda message: hmac.digest(pair_key, message, "sha256"), REQUEST_CONTEXT_MAC
    )


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The authentication headers of an incoming request, parsed but not yet verified: an Ed25519
    `signature` (version 1), or a pair-key `mac` (version 2, PROTOCOL.md §14.8)."""

    user: str
    audience: str
    timestamp: int
    nonce: str
    signature: bytes
    mac: bytes | None = None

    @classmethod
    def from_headers(cls, headers: Any) -> SignedRequest:
        is_mac = HEADER_MAC in headers and HEADER_SIG not in headers
        try:
            user, audience = headers[HEADER_USER], headers[HEADER_TO]
            raw_time, nonce, raw_sig = (
                headers[HEADER_TIME],
                headers[HEADER_NONCE],
                headers[HEADER_MAC if is_mac else HEADER_SIG],
            )
        except KeyError as exc:
            raise AuthError(
                f"This request must be signed: header {exc.args[0]} is missing.", code="unsigned"
            ) from exc
        if not (raw_time.isascii() and raw_time.isdigit()) or len(raw_time) > 12:
            raise AuthError("Flame-Timestamp must be whole epoch seconds.", code="bad_signature")
        try:
            b64d(nonce, length=16, what="Flame-Nonce")
            if is_mac:
                return cls(user, audience, int(raw_time), nonce, b"", b64d(raw_sig, length=32))
            signature = b64d(raw_sig, length=64, what="Flame-Signature")
        except BadRequest as exc:
            raise AuthError(exc.message, code="bad_signature") from exc
        return cls(user, audience, int(raw_time), nonce, signature)

    def check_context(self, *, expected_audience: str, now: float, not_before: float) -> None:
        """The checks that need no key (PROTOCOL.md §4.3 steps 4-6): meant for this receiver,
        inside the time window, not signed before it started. A request that fails them is
        refused before anyone's key is looked up."""
        if self.audience != expected_audience:
            raise AuthError("This request was signed for someone else.", code="wrong_audience")
        if abs(now - self.timestamp) > MAX_SKEW_S:
            raise AuthError(
                "The request's timestamp is outside the allowed window; check the clock.",
                code="stale_request",
            )
        if self.timestamp < not_before:
            # Signed before this process started: its nonce cache cannot vouch for it.
            raise AuthError(
                "The request predates this server's start; sign it again.", code="stale_request"
            )

    def check(
        self,
        key: bytes,
        *,
        method: str,
        path_qs: str,
        host: str,
        expected_audience: str,
        body: bytes,
        now: float,
        not_before: float,
        unsigned_body: bool = False,
    ) -> None:
        """Verify audience, time window and signature (the nonce cache is the caller's). `key` is
        the caller's identity key, or the pair key for a MAC request."""
        self.check_context(expected_audience=expected_audience, now=now, not_before=not_before)
        message = request_string(
            method,
            path_qs,
            host,
            self.user,
            self.audience,
            self.timestamp,
            self.nonce,
            body,
            unsigned_body=unsigned_body,
            context=REQUEST_CONTEXT if self.mac is None else REQUEST_CONTEXT_MAC,
        )
        if self.mac is not None:
            if not hmac.compare_digest(hmac.digest(key, message, "sha256"), self.mac):
                raise AuthError("The request MAC does not verify.", code="bad_signature")
        elif not verify_signature(key, self.signature, message):
            raise AuthError("The request signature does not verify.", code="bad_signature")


class NonceCache:
    """Nonces seen within the time window. Pure: the caller passes `now`."""

    def __init__(self, window_s: int = 2 * MAX_SKEW_S, max_entries: int = 1_000_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self.seen: dict[tuple[str, str], float] = {}

    def check_and_add(self, user: str, nonce: str, now: float) -> None:
        if len(self.seen) >= self.max_entries // 2:
            self.seen = {k: t for k, t in self.seen.items() if t > now}
        key = (user, nonce)
        expiry = self.seen.get(key)
        if expiry is not None and expiry > now:
            raise AuthError("This request was already used (replay refused).", code="replayed")
        if len(self.seen) >= self.max_entries:
            raise AuthError("Too many requests in the window; try again.", code="replayed")
        self.seen[key] = now + self.window_s


# --- signed records ------------------------------------------------------------------------


def record_message(context: str, fields: dict[str, Any]) -> bytes:
    """Bytes signed for a record: 'flame/v1/<context>\\n' || canonical JSON of its unsigned fields."""
    return f"flame/v1/{context}\n".encode() + canonical_json(fields)


def sign_record(identity: Identity, context: str, fields: dict[str, Any]) -> str:
    return b64e(identity.sign(record_message(context, fields)))


def verify_record(identity_key: bytes, context: str, fields: dict[str, Any], sig: str) -> bool:
    try:
        signature = b64d(sig, length=64, what="sig")
    except BadRequest:
        return False
    return verify_signature(identity_key, signature, record_message(context, fields))


def enrollment_proof(username: str, identity_key: str, x25519_key: str) -> dict[str, Any]:
    return {"username": username, "identity_key": identity_key, "x25519_key": x25519_key}

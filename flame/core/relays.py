"""Store-and-forward rules (PROTOCOL.md §13.3): which peers relay for whom, and the recipient's
signed acknowledgement that lets a relay drop what it holds. No I/O here."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from flame.core.crypto import Identity
from flame.core.models import RelayAck
from flame.core.signing import sign_record, verify_record

ACK_CONTEXT = "relay-ack"
DEPOSITOR_TAG_BYTES = 16


def depositor_tag(key: bytes, depositor: str) -> bytes:
    """What a relay stores instead of the depositor's name: enough to count each depositor's
    share of the quota, and, once `key` (random, in the relay's memory only) is gone, nothing."""
    mac = HMAC(key, hashes.SHA256())
    mac.update(f"flame/v1/relay-depositor\n{depositor}".encode())
    return mac.finalize()[:DEPOSITOR_TAG_BYTES]


def choose_relays(recipient: str, candidates: list[str], count: int) -> list[str]:
    """Rendezvous hashing: the same recipient maps to the same relays for everyone who sees the
    same candidates, and one candidate leaving moves only its own share."""

    def weight(candidate: str) -> bytes:
        return hashlib.sha256(f"flame/v1/relay\n{recipient}\n{candidate}".encode()).digest()

    eligible = sorted({c for c in candidates if c != recipient}, key=weight, reverse=True)
    return eligible[:count]


def ack_fields(ack: RelayAck) -> dict[str, Any]:
    return ack.model_dump(exclude={"sig"})


def make_ack(identity: Identity, relay: str, to: str, ids: list[str], ts: int) -> RelayAck:
    fields: dict[str, Any] = {"relay": relay, "to": to, "ids": sorted(set(ids)), "ts": ts}
    return RelayAck(**fields, sig=sign_record(identity, ACK_CONTEXT, fields))


def verify_ack(ack: RelayAck, recipient_identity_key: bytes, *, relay: str, to: str) -> bool:
    """True when `to` itself signed this acknowledgement, for this relay."""
    return (
        ack.relay == relay
        and ack.to == to
        and verify_record(recipient_identity_key, ACK_CONTEXT, ack_fields(ack), ack.sig)
    )

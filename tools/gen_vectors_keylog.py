"""The key log vectors of docs/PROTOCOL.md §18.7, written by tools/gen_vectors.py.

Five entries (alice and bob of §10, carol, alice's rekey, dave) under a fixed log key: each
entry's bytes and leaf hash, the root of every prefix of the log, the signed heads of 3 and 5
entries with their header form, an inclusion proof and a consistency proof. All deterministic.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flame.core import keylog
from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.keylog import KeyLogEntry, MerkleTree
from flame.core.signing import record_message

LOG_PRIVATE_HEX = "4c" * 32
# (username, Ed25519 private, X25519 private, ts, kind): keys of §10 for alice and bob.
ENTRIES = (
    ("alice", "a1", "a2", 1700000000, "enroll"),
    ("bob", "b1", "b2", 1700000100, "enroll"),
    ("carol", "c1", "c2", 1700000200, "enroll"),
    ("alice", "a5", "a6", 1700000300, "rekey"),
    ("dave", "d1", "d2", 1700000400, "enroll"),
)


def entry_of(name: str, ed: str, x: str, ts: int, kind: str) -> KeyLogEntry:
    identity = Identity.from_secret(bytes.fromhex(ed * 32) + bytes.fromhex(x * 32))
    return KeyLogEntry.model_validate(
        {
            "username": name,
            "identity_key": b64e(identity.identity_key),
            "x25519_key": b64e(identity.x25519_key),
            "x25519_sig": b64e(identity.binding_signature(name)),
            "ts": ts,
            "kind": kind,
        }
    )


def head_outputs(log_key: Ed25519PrivateKey, tree: MerkleTree, size: int, ts: int) -> Any:
    head = keylog.sign_head(log_key, size, ts, tree.root(size))
    fields = keylog.head_fields(size, ts, tree.root(size))
    return {
        "message": record_message(keylog.HEAD_CONTEXT, fields).decode(),
        "head": head.model_dump(),
        "header": keylog.head_header(head),
    }


def build() -> dict[str, Any]:
    log_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(LOG_PRIVATE_HEX))
    entries = [entry_of(*spec) for spec in ENTRIES]
    tree = MerkleTree([keylog.entry_hash(e) for e in entries])
    return {
        "log_private_hex": LOG_PRIVATE_HEX,
        "log_key": b64e(keylog.public_key_of(log_key)),
        "entries": [
            {
                "entry": e.model_dump(),
                "data": keylog.entry_data(e).decode(),
                "leaf_hex": keylog.entry_hash(e).hex(),
            }
            for e in entries
        ],
        "roots_hex": [tree.root(n).hex() for n in range(len(entries) + 1)],
        "head_3": head_outputs(log_key, tree, 3, entries[2].ts),
        "head_5": head_outputs(log_key, tree, 5, entries[4].ts),
        "inclusion_3_in_5": [h.hex() for h in tree.inclusion_proof(3, 5)],
        "consistency_3_to_5": [h.hex() for h in tree.consistency_proof(3, 5)],
    }

"""The key log vectors of docs/PROTOCOL.md §18.7: recomputed from the section's text with bare
primitives (SHA-256 and Ed25519, a Merkle tree written here from §18.2), and by the code; the
proofs verify, and altered ones do not."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flame.core import keylog
from flame.core.crypto import binding_message, verify_signature
from flame.core.encoding import b64d, canonical_json
from flame.core.keylog import KeyLogEntry, KeyLogHead, MerkleTree
from tests.core.test_vectors import OUTPUTS, vectors_block


def load() -> dict[str, Any]:
    return vectors_block("keylog-vectors", "§18.7")


V = load()
ENTRIES = [KeyLogEntry.model_validate(e["entry"]) for e in V["entries"]]


def mth(leaves: list[bytes]) -> bytes:
    """MTH of §18.2, written out: the empty string's hash, a leaf, or a split at a power of 2."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def spec_leaf(entry: dict[str, Any]) -> bytes:
    data = (
        b"flame/v1/keylog-entry\n"
        + json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    return hashlib.sha256(b"\x00" + data).digest()


def test_entries_and_leaves_follow_the_text() -> None:
    for vector, entry in zip(V["entries"], ENTRIES, strict=True):
        assert vector["data"].encode() == keylog.entry_data(entry)
        assert (
            spec_leaf(vector["entry"]).hex() == vector["leaf_hex"] == keylog.entry_hash(entry).hex()
        )
        # every entry's binding is the user's own (§3.2)
        assert verify_signature(
            b64d(entry.identity_key),
            b64d(entry.x25519_sig),
            binding_message(entry.username, b64d(entry.x25519_key)),
        )
    first = V["entries"][0]["entry"]
    assert first["identity_key"] == OUTPUTS["alice"]["identity_key"]  # §10's alice
    keylog.check_kinds(ENTRIES, set())


def test_roots_follow_the_text_and_the_code() -> None:
    leaves = [bytes.fromhex(e["leaf_hex"]) for e in V["entries"]]
    tree = MerkleTree(leaves)
    for size, root in enumerate(V["roots_hex"]):
        assert mth(leaves[:size]).hex() == root == tree.root(size).hex()


def test_heads_are_signed_by_the_log_key_as_the_text_says() -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(V["log_private_hex"]))
    public = b64d(V["log_key"], length=32)
    assert private.public_key().public_bytes_raw() == public
    for name, size in (("head_3", 3), ("head_5", 5)):
        vector = V[name]
        head = KeyLogHead.model_validate(vector["head"])
        fields = {"root": head.root, "size": head.size, "ts": head.ts}
        message = b"flame/v1/keylog-head\n" + canonical_json(fields)
        assert message.decode() == vector["message"]
        assert (head.size, head.ts) == (size, ENTRIES[size - 1].ts)
        assert b64d(head.root).hex() == V["roots_hex"][size]
        Ed25519PublicKey.from_public_bytes(public).verify(b64d(head.sig), message)
        assert keylog.sign_head(private, size, head.ts, b64d(head.root)) == head  # deterministic
        assert keylog.verify_head(head, public)
        assert vector["header"] == f"{head.size}.{head.ts}.{head.root}.{head.sig}"
        assert keylog.parse_head_header(vector["header"]) == head
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(public).verify(
            b64d(V["head_5"]["head"]["sig"]), V["head_3"]["message"].encode()
        )


def test_proofs_match_and_verify() -> None:
    leaves = [bytes.fromhex(e["leaf_hex"]) for e in V["entries"]]
    tree = MerkleTree(leaves)
    root_3, root_5 = (bytes.fromhex(V["roots_hex"][n]) for n in (3, 5))
    inclusion = [bytes.fromhex(h) for h in V["inclusion_3_in_5"]]
    consistency = [bytes.fromhex(h) for h in V["consistency_3_to_5"]]
    assert tree.inclusion_proof(3, 5) == inclusion
    assert tree.consistency_proof(3, 5) == consistency
    # By hand: entry 3 in the tree of 5 is node(node(node(l0, l1), node(l2, l3)), l4).
    left = hashlib.sha256(b"\x01" + leaves[0] + leaves[1]).digest()
    assert inclusion == [leaves[2], left, leaves[4]]
    assert keylog.verify_inclusion(leaves[3], 3, 5, inclusion, root_5)
    assert keylog.verify_consistency(3, 5, root_3, root_5, consistency)
    assert not keylog.verify_inclusion(leaves[2], 3, 5, inclusion, root_5)
    assert not keylog.verify_consistency(3, 5, root_5, root_3, consistency)
    assert not keylog.verify_consistency(3, 5, root_3, root_5, consistency[:-1])

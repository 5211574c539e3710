"""The key log's tree and proofs (PROTOCOL.md §18.2, §18.3): RFC 6962's published reference
vectors, every proof of every small tree verifying, every altered proof failing, the frontier a
daemon keeps agreeing with the directory's tree, and the checks a daemon makes of what the
directory shows it."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from flame.core import keylog
from flame.core.encoding import b64e
from flame.core.keylog import Frontier, KeyLogEntry, MerkleTree
from flame.errors import LogRefused

# RFC 6962's reference leaves and roots (as published with Certificate Transparency's code).
DATA = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}  # fmt: skip
CONSISTENCY = {
    (1, 8): INCLUSION[(0, 8)],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}  # fmt: skip
REFERENCE = MerkleTree([keylog.leaf_hash(d) for d in DATA])


def test_roots_are_rfc_6962s() -> None:
    assert REFERENCE.root(0) == keylog.EMPTY_ROOT == hashlib.sha256(b"").digest()
    for size, expected in enumerate(ROOTS, start=1):
        assert REFERENCE.root(size).hex() == expected


def test_proofs_are_rfc_6962s_and_verify() -> None:
    for (index, size), expected in INCLUSION.items():
        proof = REFERENCE.inclusion_proof(index, size)
        assert [p.hex() for p in proof] == expected
        root = REFERENCE.root(size)
        assert keylog.verify_inclusion(REFERENCE.leaves[index], index, size, proof, root)
    for (first, second), expected in CONSISTENCY.items():
        proof = REFERENCE.consistency_proof(first, second)
        assert [p.hex() for p in proof] == expected
        roots = REFERENCE.root(first), REFERENCE.root(second)
        assert keylog.verify_consistency(first, second, *roots, proof)


def tree_of(n: int) -> MerkleTree:
    return MerkleTree([keylog.leaf_hash(i.to_bytes(4, "big")) for i in range(n)])


BIG = tree_of(40)
OTHER = MerkleTree([keylog.leaf_hash(b"other" + i.to_bytes(4, "big")) for i in range(40)])


def altered(proof: list[bytes]) -> list[list[bytes]]:
    """The same proof with one byte flipped, one hash dropped, one added, two swapped."""
    flipped = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    variants = [flipped, proof[:-1], [*proof, b"\xab" * 32]]
    if len(proof) > 1 and proof[0] != proof[1]:
        variants.append([proof[1], proof[0], *proof[2:]])
    return variants


def test_every_inclusion_proof_of_every_small_tree_verifies_and_no_altered_one_does() -> None:
    for size in range(1, BIG.size + 1):
        root = BIG.root(size)
        for index in range(size):
            proof = BIG.inclusion_proof(index, size)
            leaf = BIG.leaves[index]
            assert keylog.verify_inclusion(leaf, index, size, proof, root)
            assert not keylog.verify_inclusion(
                BIG.leaves[(index + 1) % 40], index, size, proof, root
            )
            assert not keylog.verify_inclusion(leaf, size, size, proof, root)
            for bad in altered(proof) if proof else []:
                assert not keylog.verify_inclusion(leaf, index, size, bad, root)


def test_every_consistency_proof_of_every_small_tree_verifies_and_no_altered_one_does() -> None:
    for second in range(BIG.size + 1):
        for first in range(second + 1):
            proof = BIG.consistency_proof(first, second)
            a, b = BIG.root(first), BIG.root(second)
            assert keylog.verify_consistency(first, second, a, b, proof)
            if 0 < first < second:
                # another history of the same length, and the right one of another length
                assert not keylog.verify_consistency(first, second, OTHER.root(first), b, proof)
                assert not keylog.verify_consistency(first, second, a, OTHER.root(second), proof)
                for bad in altered(proof):
                    assert not keylog.verify_consistency(first, second, a, b, bad)


def test_the_degenerate_consistency_cases() -> None:
    four, five = BIG.root(4), BIG.root(5)
    assert keylog.verify_consistency(4, 4, four, four, [])
    assert not keylog.verify_consistency(4, 4, four, five, [])
    assert not keylog.verify_consistency(4, 4, four, four, [four])
    assert keylog.verify_consistency(0, 8, keylog.EMPTY_ROOT, BIG.root(8), [])
    assert not keylog.verify_consistency(0, 8, keylog.EMPTY_ROOT, BIG.root(8), [four])
    assert not keylog.verify_consistency(5, 4, five, four, BIG.consistency_proof(4, 5))
    assert not keylog.verify_consistency(4, 5, four, five, [])
    with pytest.raises(ValueError):
        BIG.consistency_proof(5, 41)
    with pytest.raises(ValueError):
        BIG.inclusion_proof(40, 40)


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_the_frontier_a_daemon_keeps_gives_the_directorys_roots(data: list[bytes]) -> None:
    tree, frontier = MerkleTree(), Frontier()
    for item in data:
        leaf = keylog.leaf_hash(item)
        tree.append(leaf)
        frontier = frontier.append(leaf)
        assert frontier.root == tree.root()
        assert Frontier.decode(frontier.size, frontier.encode()) == frontier
    assert len(frontier.hashes) == len(data).bit_count()


# --- entries, heads, and what a daemon decides ---------------------------------------------------

LOG_KEY = Ed25519PrivateKey.from_private_bytes(b"\x4c" * 32)
LOG_PUBLIC = LOG_KEY.public_key().public_bytes_raw()


def entry(name: str, kind: keylog.Kind = "enroll", n: int = 1) -> KeyLogEntry:
    return KeyLogEntry(
        username=name,
        identity_key=b64e(bytes([n]) * 32),
        x25519_key=b64e(bytes([n + 1]) * 32),
        x25519_sig=b64e(bytes([n + 2]) * 64),
        ts=1700000000 + n,
        kind=kind,
    )


ENTRIES = [entry("alice"), entry("bob", n=2), entry("alice", "rekey", 3), entry("carol", n=4)]


def head_of(entries: list[KeyLogEntry]) -> keylog.KeyLogHead:
    tree = MerkleTree([keylog.entry_hash(e) for e in entries])
    return keylog.sign_head(LOG_KEY, tree.size, entries[-1].ts if entries else 0, tree.root())


def test_a_signed_head_verifies_with_the_log_key_only_and_survives_its_header() -> None:
    head = head_of(ENTRIES)
    assert keylog.verify_head(head, LOG_PUBLIC)
    assert not keylog.verify_head(head, b"\x01" * 32)
    assert not keylog.verify_head(head.model_copy(update={"size": 3}), LOG_PUBLIC)
    assert not keylog.verify_head(head.model_copy(update={"ts": head.ts + 1}), LOG_PUBLIC)
    assert keylog.parse_head_header(keylog.head_header(head)) == head
    for junk in (
        "",
        "4.1.x.y",
        keylog.head_header(head) + ".",
        "04" + keylog.head_header(head)[1:],
    ):
        with pytest.raises(ValueError):
            keylog.parse_head_header(junk)


def test_a_daemon_takes_a_head_that_extends_its_own_and_refuses_a_shorter_or_rewritten_one() -> (
    None
):
    tree = MerkleTree([keylog.entry_hash(e) for e in ENTRIES])
    two, four = head_of(ENTRIES[:2]), head_of(ENTRIES)
    keylog.check_extends(two, four, tree.consistency_proof(2, 4))
    with pytest.raises(LogRefused) as refused:
        keylog.check_extends(four, two, [])
    assert refused.value.kind == "truncated"
    rewritten = [ENTRIES[0], entry("bob", n=9), *ENTRIES[2:]]
    other = MerkleTree([keylog.entry_hash(e) for e in rewritten])
    with pytest.raises(LogRefused) as refused:
        keylog.check_extends(two, head_of(rewritten), other.consistency_proof(2, 4))
    assert refused.value.kind == "rewritten"


def test_entries_must_hash_to_the_signed_head() -> None:
    frontier = Frontier().append(keylog.entry_hash(ENTRIES[0]))
    head = head_of(ENTRIES)
    assert keylog.check_entries(frontier, ENTRIES[1:], head).root == keylog.head_root(head)
    for served in (ENTRIES[1:3], [*ENTRIES[1:3], entry("mallory", n=4)]):
        with pytest.raises(LogRefused) as refused:
            keylog.check_entries(frontier, served, head)
        assert refused.value.kind == "entries_mismatch"


def test_a_username_is_enrolled_once_then_rekeyed() -> None:
    keylog.check_kinds(ENTRIES, set())
    for bad in ([entry("alice", "rekey")], [entry("alice"), entry("alice", n=2)]):
        with pytest.raises(LogRefused) as refused:
            keylog.check_kinds(bad, set())
        assert refused.value.kind == "bad_entry"

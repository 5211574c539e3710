"""The key log (PROTOCOL.md §18): every enrolment and rekey the directory made, in an append-only
Merkle tree in the manner of Certificate Transparency (RFC 6962, RFC 9162 §2.1), with tree heads
signed by the directory's log key. The tree, its proofs and their checks, the signed head and
what a daemon decides from them. No I/O here.

Hashing is RFC 6962's, with its domain separation: a leaf is SHA-256(0x00 || data), an inner
node SHA-256(0x01 || left || right), the empty tree SHA-256(""); a leaf's data is
"flame/v1/keylog-entry\\n" || canonical_json(entry).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from flame.core.encoding import b64d, b64e, canonical_json
from flame.core.models import B64, Username, Wire
from flame.core.signing import record_message, verify_record
from flame.errors import BadRequest, LogRefused

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
ENTRY_CONTEXT = b"flame/v1/keylog-entry\n"
HEAD_CONTEXT = "keylog-head"  # signed as "flame/v1/keylog-head\n" || canonical JSON (§4.5)
EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_BYTES = 32
PAGE_MAX = 500  # entries per answer of GET /dir/v1/keylog/entries/{start}
PROOF_MAX = 128  # hashes in a proof: 2 * 64 levels is more than any log holds
SIZE_MAX = 2**62
HEADER = "Flame-Key-Log"  # a signed head, on answers of the directory and between daemons (§18.5)
HEADER_RE = re.compile(r"^(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})\.([A-Za-z0-9_-]{43})"
                       r"\.([A-Za-z0-9_-]{86})$")  # fmt: skip
Kind = Literal["enroll", "rekey"]


class KeyLogEntry(Wire):
    """One enrolment (`enroll`: the username's first entry) or rekey (`rekey`: every later one):
    the keys the directory bound to the username from `ts` (epoch seconds) on."""

    username: Username
    identity_key: B64
    x25519_key: B64
    x25519_sig: B64
    ts: int = Field(ge=0)
    kind: Kind


class KeyLogHead(Wire):
    """A signed tree head: the log's first `size` entries hash to `root`; `ts` is the time of its
    last entry (0 for the empty log), so every directory process signs the same bytes."""

    size: int = Field(ge=0, le=SIZE_MAX)
    ts: int = Field(ge=0)
    root: B64
    sig: B64


class KeyLogEntries(Wire):
    """GET /dir/v1/keylog/entries/{start}: entries `start`, `start + 1`, … (at most PAGE_MAX)."""

    start: int = Field(ge=0)
    entries: list[KeyLogEntry] = Field(max_length=PAGE_MAX)


class KeyLogProof(Wire):
    """An inclusion or consistency proof: the hashes, in RFC 9162's order."""

    proof: list[B64] = Field(max_length=PROOF_MAX)


# --- hashing ---------------------------------------------------------------------------------


def entry_data(entry: KeyLogEntry) -> bytes:
    return ENTRY_CONTEXT + canonical_json(entry.model_dump())


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def entry_hash(entry: KeyLogEntry) -> bytes:
    return leaf_hash(entry_data(entry))


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split(size: int) -> int:
    """The largest power of two below `size` (> 1): where RFC 6962 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleTree:
    """The directory's tree over its leaf hashes, appended to only. The hash of every complete
    subtree is kept once computed (it can never change), so a root or a proof costs a few
    hashes once the tree is warm."""

    def __init__(self, leaves: list[bytes] | None = None) -> None:
        self.leaves: list[bytes] = []
        self._complete: dict[tuple[int, int], bytes] = {}
        for leaf in leaves or []:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.leaves)

    def append(self, leaf: bytes) -> None:
        self.leaves.append(leaf)

    def _hash(self, start: int, size: int) -> bytes:
        """MTH(D[start : start + size]) (RFC 9162 §2.1.1)."""
        if size == 1:
            return self.leaves[start]
        is_complete = size & (size - 1) == 0
        if is_complete and (known := self._complete.get((start, size))) is not None:
            return known
        k = split(size)
        digest = node_hash(self._hash(start, k), self._hash(start + k, size - k))
        if is_complete:
            self._complete[(start, size)] = digest
        return digest

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check(0, size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size]) (RFC 9162 §2.1.3.1)."""
        self._check(index + 1, size)
        return self._path(index, 0, size)

    def _path(self, index: int, start: int, size: int) -> list[bytes]:
        if size == 1:
            return []
        k = split(size)
        if index < k:
            return [*self._path(index, start, k), self._hash(start + k, size - k)]
        return [*self._path(index - k, start + k, size - k), self._hash(start, k)]

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """PROOF(first, D[second]) (RFC 9162 §2.1.4.1); empty for first 0 or first = second."""
        self._check(first, second)
        if first in (0, second):
            return []
        return self._subproof(first, 0, second, True)

    def _subproof(self, first: int, start: int, size: int, whole: bool) -> list[bytes]:
        if first == size:
            return [] if whole else [self._hash(start, size)]
        k = split(size)
        if first <= k:
            return [*self._subproof(first, start, k, whole), self._hash(start + k, size - k)]
        return [*self._subproof(first - k, start + k, size - k, False), self._hash(start, k)]

    def _check(self, low: int, size: int) -> None:
        if not 0 <= low <= size <= self.size:
            raise ValueError(f"{low} and {size} do not fit a tree of {self.size} entries")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: `leaf` is entry `index` of the tree of `size` entries with `root`."""
    if not 0 <= index < size or any(len(p) != HASH_BYTES for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: the tree of `second` entries extends the one of `first` entries. The
    two cases it leaves out: from 0 anything is consistent (empty proof), and a tree is consistent
    only with itself (empty proof, the same root)."""
    if not 0 <= first <= second or any(len(p) != HASH_BYTES for p in proof):
        return False
    if first == 0:
        return not proof
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if not path:
        return False
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


@dataclass(frozen=True, slots=True)
class Frontier:
    """What a daemon keeps of the tree it verified: the roots of the complete subtrees that cover
    entries 0 .. size - 1, largest first (one per bit of `size`): enough to append entries and
    compute the new root, so entries it is given are checked against a signed head."""

    size: int = 0
    hashes: tuple[bytes, ...] = field(default=())

    def append(self, leaf: bytes) -> Frontier:
        hashes, node, size = list(self.hashes), leaf, self.size
        while size & 1:
            node = node_hash(hashes.pop(), node)
            size >>= 1
        return Frontier(self.size + 1, (*hashes, node))

    @property
    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        digest = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            digest = node_hash(left, digest)
        return digest

    def encode(self) -> bytes:
        return b"".join(self.hashes)

    @classmethod
    def decode(cls, size: int, raw: bytes) -> Frontier:
        count = size.bit_count()
        if len(raw) != count * HASH_BYTES:
            raise ValueError("a frontier of this size has another length")
        return cls(size, tuple(raw[i * HASH_BYTES : (i + 1) * HASH_BYTES] for i in range(count)))


# --- signed heads ----------------------------------------------------------------------------


def public_key_of(log_key: Ed25519PrivateKey) -> bytes:
    return log_key.public_key().public_bytes_raw()


def head_fields(size: int, ts: int, root: bytes) -> dict[str, Any]:
    return {"root": b64e(root), "size": size, "ts": ts}


def sign_head(log_key: Ed25519PrivateKey, size: int, ts: int, root: bytes) -> KeyLogHead:
    fields = head_fields(size, ts, root)
    sig = b64e(log_key.sign(record_message(HEAD_CONTEXT, fields)))
    return KeyLogHead(size=size, ts=ts, root=b64e(root), sig=sig)


def head_root(head: KeyLogHead) -> bytes:
    return b64d(head.root, length=HASH_BYTES, what="root")


def verify_head(head: KeyLogHead, log_key: bytes) -> bool:
    try:
        root = head_root(head)
    except BadRequest:
        return False
    return verify_record(log_key, HEAD_CONTEXT, head_fields(head.size, head.ts, root), head.sig)


def head_header(head: KeyLogHead) -> str:
    """The head as the `Flame-Key-Log` header carries it: size.ts.root.sig (§18.5)."""
    return f"{head.size}.{head.ts}.{head.root}.{head.sig}"


def parse_head_header(text: str) -> KeyLogHead:
    """Raises ValueError: not a head of the header's form (its signature is not checked here)."""
    found = HEADER_RE.fullmatch(text.strip())
    if found is None:
        raise ValueError("not a key log head")
    size, ts, root, sig = found.groups()
    try:
        b64d(root, length=HASH_BYTES, what="root")
        b64d(sig, length=64, what="sig")
        return KeyLogHead(size=int(size), ts=int(ts), root=root, sig=sig)
    except (BadRequest, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError("not a key log head") from exc


def same_tree(a: KeyLogHead, b: KeyLogHead) -> bool:
    return (a.size, a.root) == (b.size, b.root)


# --- what a daemon decides (§18.4) ------------------------------------------------------------


def check_extends(known: KeyLogHead, new: KeyLogHead, proof: list[bytes]) -> None:
    """The directory's new head extends the last one this daemon verified.

    Raises:
        LogRefused: truncated (fewer entries), or history rewritten (the proof fails).
    """
    if new.size < known.size:
        raise LogRefused(
            f"The directory's key log shrank from {known.size} to {new.size} entries.",
            kind="truncated",
        )
    if not verify_consistency(known.size, new.size, head_root(known), head_root(new), proof):
        raise LogRefused(
            f"The directory's key log of {new.size} entries does not contain the log of "
            f"{known.size} entries it showed before: its history was rewritten.",
            kind="rewritten",
        )


def check_entries(frontier: Frontier, entries: list[KeyLogEntry], head: KeyLogHead) -> Frontier:
    """Entries frontier.size .. head.size - 1, appended: they must give the signed root.

    Raises:
        LogRefused: they do not (the directory served entries other than those it signed).
    """
    if frontier.size + len(entries) != head.size:
        raise LogRefused(
            f"The directory served {len(entries)} key log entries after entry "
            f"{frontier.size}, not the {head.size - frontier.size} its head counts.",
            kind="entries_mismatch",
        )
    for entry in entries:
        frontier = frontier.append(entry_hash(entry))
    if frontier.root != head_root(head):
        raise LogRefused(
            f"The key log entries the directory served do not hash to its signed head of "
            f"{head.size} entries.",
            kind="entries_mismatch",
        )
    return frontier


def check_kinds(entries: list[KeyLogEntry], known: set[str]) -> None:
    """A username's first entry enrols it, every later one rekeys it; `known`: the usernames of
    the entries before these (updated).

    Raises:
        LogRefused: an entry of the other kind.
    """
    for entry in entries:
        expected = "rekey" if entry.username in known else "enroll"
        if entry.kind != expected:
            raise LogRefused(
                f"The key log says {entry.username!r} was {entry.kind}ed where it can only have "
                f"been {expected}ed.",
                kind="bad_entry",
            )
        known.add(entry.username)


RECENT_CHANGE_S = 30 * 24 * 3600  # a rekey this recent is shown beside the person (§18.6)


def recent_change(history: list[tuple[str, int]], now: int) -> int | None:
    """When the last rekey of a (kind, ts) history was, if within RECENT_CHANGE_S of `now`."""
    rekeys = [ts for kind, ts in history if kind == "rekey"]
    if rekeys and now - rekeys[-1] < RECENT_CHANGE_S:
        return rekeys[-1]
    return None

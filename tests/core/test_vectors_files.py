"""The hash trailer vector of docs/PROTOCOL.md §11.8 (a streamed file offered without `sha256`,
§11.4): its chunks and trailer sealed again from the section's text with bare AES-256-GCM, the
code's equal to them, and the trailer opened; sealed under a chunk's AAD it does not open."""

from __future__ import annotations

import hashlib
import math
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flame.core.files import TRAILER_BYTES, ChunkCipher, Layout
from flame.errors import DecryptionFailed
from tests.core.test_vectors import vectors_block

V = vectors_block("file-trailer-vectors", "§11.8")
KEY, TID = bytes.fromhex(V["key_hex"]), bytes.fromhex(V["transfer_id_hex"])
DATA = bytes(i % 256 for i in range(V["size"]))  # as `content` says


def nonce(i: int) -> bytes:
    return b"\x00" * 4 + struct.pack(">Q", i)


def test_the_chunks_and_the_trailer_follow_the_text() -> None:
    size, chunk_bytes = V["size"], V["chunk_bytes"]
    count = math.ceil(size / chunk_bytes)
    assert count == V["chunk_count"] == Layout(size, chunk_bytes).count
    aead = AESGCM(KEY)
    sealed = [
        aead.encrypt(
            nonce(i),
            DATA[i * chunk_bytes : (i + 1) * chunk_bytes],
            b"flame/v1/file-chunk\x00" + TID + struct.pack(">Q", i),
        )
        for i in range(count)
    ]
    assert [hashlib.sha256(c).hexdigest() for c in sealed] == V["sealed_chunks_sha256_hex"]
    assert sealed[-1].hex() == V["last_sealed_hex"]
    digest = hashlib.sha256(DATA).digest()
    assert digest.hex() == V["sha256_hex"]
    aad = b"flame/v1/file-hash\x00" + TID + struct.pack(">Q", count)
    assert len(aad) == 43 and aad.hex() == V["trailer_aad_hex"]
    assert nonce(count).hex() == V["trailer_nonce_hex"]
    trailer = aead.encrypt(nonce(count), digest, aad)
    assert trailer.hex() == V["trailer_hex"] and len(trailer) == TRAILER_BYTES
    assert sum(map(len, sealed)) + len(trailer) == V["body_bytes"]
    # The code seals the same bytes and opens the trailer to the file's hash.
    cipher = ChunkCipher(KEY, TID)
    assert cipher.seal_trailer(count, digest) == trailer
    assert cipher.open_trailer(count, trailer) == digest


def test_a_trailer_opens_only_as_a_trailer_at_the_chunk_count() -> None:
    cipher, count = ChunkCipher(KEY, TID), V["chunk_count"]
    trailer = bytes.fromhex(V["trailer_hex"])
    with pytest.raises(DecryptionFailed):
        cipher.open(count, trailer)  # a chunk's AAD: never a chunk
    with pytest.raises(DecryptionFailed):
        cipher.open_trailer(count + 1, trailer)  # bound to the chunk count
    as_chunk = cipher.seal(count, bytes.fromhex(V["sha256_hex"]))
    with pytest.raises(DecryptionFailed):
        cipher.open_trailer(count, as_chunk)  # a chunk never opens as a trailer
    with pytest.raises(DecryptionFailed):
        ChunkCipher(KEY, bytes(16)).open_trailer(count, trailer)  # nor for another transfer

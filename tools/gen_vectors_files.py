"""The hash trailer vector of docs/PROTOCOL.md §11.8, written by tools/gen_vectors.py.

A file of three chunks (the last one short) under a fixed key and transfer id, streamed without
its hash in the offer: each sealed chunk, then the trailer that seals the whole file's SHA-256
after them (§11.4), with its nonce and AAD. All deterministic.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flame.core.encoding import b64e
from flame.core.files import MIN_CHUNK_BYTES, ChunkCipher, Layout, chunk_nonce, trailer_aad

KEY_HEX = "f0" * 32
TRANSFER_ID_HEX = "a5" * 16
SIZE = 2 * MIN_CHUNK_BYTES + 100  # three chunks, the last of 100 bytes


def content() -> bytes:
    """The file: bytes 0, 1, .., 255, 0, 1, .. (`SIZE` of them)."""
    return bytes(i % 256 for i in range(SIZE))


def build() -> dict[str, Any]:
    key, transfer_id = bytes.fromhex(KEY_HEX), bytes.fromhex(TRANSFER_ID_HEX)
    cipher, layout, data = ChunkCipher(key, transfer_id), Layout(SIZE, MIN_CHUNK_BYTES), content()
    chunks = [
        cipher.seal(i, data[layout.offset(i) : layout.offset(i) + layout.plain_len(i)])
        for i in range(layout.count)
    ]
    digest = hashlib.sha256(data).digest()
    trailer = cipher.seal_trailer(layout.count, digest)
    return {
        "key_hex": KEY_HEX,
        "transfer_id_hex": TRANSFER_ID_HEX,
        "transfer_id": b64e(transfer_id),
        "size": SIZE,
        "chunk_bytes": MIN_CHUNK_BYTES,
        "content": "bytes i mod 256 for i in 0 .. size-1",
        "chunk_count": layout.count,
        "sealed_chunks_sha256_hex": [hashlib.sha256(c).hexdigest() for c in chunks],
        "last_sealed_hex": chunks[-1].hex(),
        "sha256_hex": digest.hex(),
        "trailer_nonce_hex": chunk_nonce(layout.count).hex(),
        "trailer_aad_hex": trailer_aad(transfer_id, layout.count).hex(),
        "trailer_hex": trailer.hex(),
        "body_bytes": sum(len(c) for c in chunks) + len(trailer),
    }

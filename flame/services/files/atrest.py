"""Files at rest are sealed (docs/ARCHITECTURE.md, "At rest"): every stored file, sent or received,
streamed or inline, is kept as the sequence of its sealed chunks, exactly as they travel
(PROTOCOL.md §11.4, under the transfer's file key, which only the encrypted database holds). So a
received chunk is written as it arrived, once verified; the sender seals each chunk once, as the
browser's upload is written, and streams the stored chunks as they are; the browser is served the
plaintext, decrypted a chunk at a time (memory stays at a chunk or two, whatever the file's size).

Also the rewrite of plaintext files that an older version stored (at the first unlock).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flame.config import Settings
from flame.core.encoding import b64d
from flame.core.files import TRANSFER_ID_BYTES, ChunkCipher, Layout
from flame.errors import FlameError
from flame.services.files.disk import (
    files_dir,
    new_stored_name,
    remove_strays,
    run_blocking,
    stored_path,
)
from flame.store import files as file_store
from flame.store.db import Database
from flame.store.files import Transfer
from flame.store.folder import fsync_folder
from flame.store.keystore import delete_meta, get_meta

log = logging.getLogger("flame.files")
SEAL_FILES_MARK = "seal_files"  # set by migration 007, removed once every file is sealed


def cipher_of(transfer: Transfer) -> ChunkCipher:
    return ChunkCipher(
        transfer.file_key, b64d(transfer.transfer_id, length=TRANSFER_ID_BYTES, what="transfer_id")
    )


def write_chunk(fd: int, cipher: ChunkCipher, layout: Layout, index: int, chunk: bytes) -> None:
    """Seal one chunk of plaintext and write it at its place (blocking)."""
    os.pwrite(fd, cipher.seal(index, chunk), layout.sealed_offset(index))


def read_sealed(fd: int, layout: Layout, index: int) -> bytes:
    """One stored chunk as it travels (blocking)."""
    sealed = os.pread(fd, layout.sealed_len(index), layout.sealed_offset(index))
    if len(sealed) != layout.sealed_len(index):
        raise FlameError("A stored file is shorter than the bytes recorded for it.")
    return sealed


def read_chunk(fd: int, cipher: ChunkCipher, layout: Layout, index: int) -> bytes:
    """One stored chunk, opened (blocking). A damaged file raises DecryptionFailed."""
    return cipher.open(index, read_sealed(fd, layout, index))


def hash_prefix(fd: int, cipher: ChunkCipher, layout: Layout, held_bytes: int) -> Any:
    """SHA-256 state over the first `held_bytes` of the plaintext (whole chunks; blocking)."""
    hasher = hashlib.sha256()
    for index in range(layout.held_chunks(held_bytes)):
        hasher.update(read_chunk(fd, cipher, layout, index))
    return hasher


def held_length(layout: Layout, held_bytes: int) -> int:
    """The stored length of a verified prefix of `held_bytes` plaintext bytes."""
    return layout.sealed_bytes(0, layout.held_chunks(held_bytes))


def write_whole(path: Path, cipher: ChunkCipher, layout: Layout, data: bytes) -> None:
    """A new file holding `data` sealed, fsynced (blocking)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for index in range(layout.count):
            start = layout.offset(index)
            write_chunk(fd, cipher, layout, index, data[start : start + layout.plain_len(index)])
        os.fsync(fd)
    finally:
        os.close(fd)


async def read_whole(settings: Settings, transfer: Transfer) -> bytes:
    """A small file's plaintext (an inline offer's content, at most 1 MiB: PROTOCOL.md §11.6)."""
    return b"".join([piece async for piece in plaintext(settings, transfer, 0, transfer.size)])


async def plaintext(
    settings: Settings, transfer: Transfer, start: int, end: int
) -> AsyncIterator[bytes]:
    """Bytes start..end-1 of a stored file, decrypted a chunk at a time in a thread; the next
    chunk is read while this one is written to the browser."""
    layout, cipher = transfer.layout, cipher_of(transfer)
    if not 0 <= start < end <= transfer.size:
        return
    fd = await run_blocking(os.open, stored_path(settings, transfer), os.O_RDONLY)
    first, last = start // layout.chunk_bytes, (end - 1) // layout.chunk_bytes
    ahead: asyncio.Future[bytes] | None = None
    try:
        for index in range(first, last + 1):
            chunk = await (ahead or run_blocking(read_chunk, fd, cipher, layout, index))
            ahead = None
            if index < last:
                ahead = asyncio.ensure_future(
                    run_blocking(read_chunk, fd, cipher, layout, index + 1)
                )
            base = layout.offset(index)
            yield chunk[max(0, start - base) : end - base]
    finally:
        if ahead is not None:
            ahead.cancel()  # run_blocking lets the thread finish before the descriptor closes
            with contextlib.suppress(asyncio.CancelledError, FlameError, OSError):
                await ahead
        os.close(fd)


# --- files an older version stored in plaintext ---------------------------------------------


async def seal_plain_files(settings: Settings, db: Database) -> int:
    """Rewrite, sealed, every file that an older version stored in plaintext (migration 007 marked
    their transfers 'plain' and left the `seal_files` mark). Each is written under a new name,
    fsynced and recorded in the database before its plaintext is deleted; then every file that no
    transfer names is deleted (nothing else is being written before the first unlock ends), and
    only then does the mark go. A crash at any point loses nothing and leaves the mark: the next
    unlock goes on from there. Returns how many files it rewrote."""
    if await get_meta(db, SEAL_FILES_MARK) is None:
        return 0
    rewritten = 0
    for transfer in await file_store.plain_at_rest(db):
        name = new_stored_name(transfer.direction)
        sealed_any = await run_blocking(_reseal, settings, transfer, name)
        await file_store.mark_sealed(db, transfer.key, name if sealed_any else transfer.stored_name)
        for partial in (False, True):
            with contextlib.suppress(FileNotFoundError):
                stored_path(settings, transfer, partial=partial).unlink()
        rewritten += int(sealed_any)
    if await remove_strays(settings, await file_store.stored_names(db), min_age_s=0.0) or rewritten:
        await run_blocking(fsync_folder, files_dir(settings))
    await delete_meta(db, SEAL_FILES_MARK)
    if rewritten:
        log.info("sealed %d files stored in plaintext by an older version", rewritten)
    return rewritten


def _reseal(settings: Settings, transfer: Transfer, new_name: str) -> bool:
    """Write the sealed form of a transfer's plaintext file(s) under `new_name` (blocking). A
    complete file is sealed whole; a partial one (`.part`: a receipt or upload cut short) only
    in its verified prefix, which is all that its transfer counts on. False: no file to seal."""
    sealed_any = False
    cipher, layout = cipher_of(transfer), transfer.layout
    for partial in (False, True):
        old = stored_path(settings, transfer, partial=partial)
        if not old.is_file():
            continue
        chunks = layout.count if not partial else layout.held_chunks(transfer.held_bytes)
        if partial and transfer.direction == "out":
            chunks = 0  # an upload cut short is never resumed (sender.py drops it)
        new = old.with_name(new_name + old.name.removeprefix(transfer.stored_name))
        with contextlib.suppress(FileNotFoundError):
            new.unlink()
        source = os.open(old, os.O_RDONLY)
        target = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for index in range(chunks):
                chunk = os.pread(source, layout.plain_len(index), layout.offset(index))
                if len(chunk) != layout.plain_len(index):
                    break  # shorter than recorded: keep what is whole, as a crash would
                write_chunk(target, cipher, layout, index, chunk)
            os.fsync(target)
        finally:
            os.close(source)
            os.close(target)
        sealed_any = True
    return sealed_any

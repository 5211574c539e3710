"""Where a transfer's bytes live, and the thread hops that touch them.

Every file Flame keeps is under <data>/files with a name Flame made up (never a sender's name);
the database's state is what the UI believes, never a file's presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flame.config import Settings
from flame.errors import FlameError
from flame.store.files import Transfer

T = TypeVar("T")

STORED_NAME_RE = re.compile(r"^(in|out)-[0-9a-f]{32}$")
PARTIAL_SUFFIX = ".part"
IO_BYTES = 1024 * 1024  # one read or write of a file, and one hop to a thread, at most
STRAY_AGE_S = 600.0  # an unreferenced stored file older than this is left over from a crash


def files_dir(settings: Settings) -> Path:
    folder = settings.daemon_data_dir() / "files"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def new_stored_name(direction: str) -> str:
    return f"{direction}-{secrets.token_hex(16)}"


def stored_path(settings: Settings, transfer: Transfer, *, partial: bool = False) -> Path:
    """The file of a transfer. The name comes from our own database, and is checked again here,
    so that no path outside the data folder can ever be formed."""
    if not STORED_NAME_RE.fullmatch(transfer.stored_name):
        raise FlameError(f"Corrupt stored file name {transfer.stored_name!r}.")
    suffix = PARTIAL_SUFFIX if partial else ""
    return files_dir(settings) / (transfer.stored_name + suffix)


def remove_files(settings: Settings, transfer: Transfer) -> None:
    for partial in (True, False):
        with contextlib.suppress(FileNotFoundError):
            stored_path(settings, transfer, partial=partial).unlink()


async def remove_strays(settings: Settings, known: set[str], min_age_s: float = STRAY_AGE_S) -> int:
    """Delete files under <data>/files whose names are not in `known` (the stored names of every
    transfer): an inline file written just before a crash, before its offer was committed
    (offers.py). Only files older than `min_age_s`, so that one being written right now is never
    taken. Returns how many."""
    folder = settings.daemon_data_dir() / "files"
    if not folder.is_dir():
        return 0
    cutoff = time.time() - min_age_s

    def sweep() -> int:
        removed = 0
        for entry in os.scandir(folder):
            base = entry.name.removesuffix(PARTIAL_SUFFIX)
            if not STORED_NAME_RE.fullmatch(base) or base in known:
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed

    return await run_blocking(sweep)


def fsync_and_uncache(fd: int, length: int) -> None:
    """fsync a file being written, then drop its first `length` bytes from the page cache
    (blocking). Files are written once and not read again soon (a streaming sender reads each
    chunk just after writing it, a receiver never), so the pages made durable go back to the
    kernel, which reuses them for the next writes: a page it hands out fresh cost about 5 s of
    kernel CPU per GiB written on the bench's virtual machine, a reused one a tenth of that
    (docs/ARCHITECTURE.md, "At rest")."""
    os.fsync(fd)
    if length > 0 and hasattr(os, "posix_fadvise"):  # not on macOS: the pages simply stay
        os.posix_fadvise(fd, 0, length, os.POSIX_FADV_DONTNEED)


class SyncBehind:
    """fsyncs a file being written beside its writes, once `every_bytes` more are written, and
    gives back the pages of what each fsync made durable but the last `every_bytes`, which a
    streaming sender is about to read (fsync_and_uncache). An fsync that fails fails the writer
    at its next write or at `settle`."""

    def __init__(self, fd: int, every_bytes: int) -> None:
        self.fd, self.every_bytes = fd, every_bytes
        self.synced = 0  # the file's length as of the last fsync started
        self.running: asyncio.Future[None] | None = None

    def written(self, length: int) -> None:
        """The file now holds `length` bytes: start an fsync if one is due and none runs."""
        if self.running is not None:
            if not self.running.done():
                return
            self.running.result()
        if length - self.synced >= self.every_bytes:
            self.synced = length
            kept = max(0, length - self.every_bytes)
            self.running = asyncio.ensure_future(run_blocking(fsync_and_uncache, self.fd, kept))

    async def settle(self) -> None:
        """Until the fsync that runs has ended (it uses the descriptor); its error is raised."""
        if self.running is not None:
            await asyncio.shield(self.running)


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """asyncio.to_thread, except that a cancelled caller still waits for the thread to finish:
    the thread may be writing to a file descriptor that the caller closes next."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise

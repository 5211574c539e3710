"""The body of a chunk request (PROTOCOL.md §11.4), the sender's side: the stored sealed chunks
from the first one the peer lacks, following an upload that still arrives, then for a file
offered without its hash the sealed hash (the trailer)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator

from flame.core.files import TAG_BYTES
from flame.errors import FlameError
from flame.services.context import Context
from flame.services.files.atrest import cipher_of
from flame.services.files.atrest import read_sealed as read_stored
from flame.services.files.disk import run_blocking, stored_path
from flame.services.files.runtime import FileRuntime, Growing
from flame.store import files as file_store
from flame.store.files import Transfer


class ChunkStream:
    """The request body: sealed chunks read from our copy in a thread, one at a time (memory
    stays at a chunk or two whatever the file's size), at most files.send_rate_bytes_s."""

    def __init__(self, ctx: Context, runtime: FileRuntime, transfer: Transfer, start: int) -> None:
        self.ctx, self.runtime, self.transfer, self.start = ctx, runtime, transfer, start
        self.sent_bytes = 0

    async def body(self) -> AsyncGenerator[bytes, None]:
        """The chunks from `start`, following an upload that still arrives (its stored chunks
        only), then for a file offered without its hash the trailer (PROTOCOL.md §11.4)."""
        transfer, layout = self.transfer, self.transfer.layout
        rate = self.ctx.settings.files.send_rate_bytes_s
        done = layout.offset(self.start)
        progress = self.runtime.progress(transfer, "send", done)
        loop = asyncio.get_running_loop()
        began = loop.time()
        growing = self.runtime.growing.get(transfer.key)
        fd = await run_blocking(open_stored, self.ctx, transfer)

        def read_sealed(index: int) -> bytes:
            """Our copy is stored sealed (services/files/atrest.py): sent as it is."""
            return read_stored(fd, layout, index)

        async def read_ahead(index: int) -> bytes:
            if growing is not None:
                await growing.until(index + 1)
            return await run_blocking(read_sealed, index)

        # The next chunk is read in a thread while this one is on the wire.
        ahead_task: asyncio.Future[bytes] | None = None
        try:
            for index in range(self.start, layout.count):
                sealed = await (ahead_task or read_ahead(index))
                ahead_task = None
                if index + 1 < layout.count:
                    ahead_task = asyncio.ensure_future(read_ahead(index + 1))
                yield sealed
                self.sent_bytes += len(sealed) - TAG_BYTES
                done += len(sealed) - TAG_BYTES
                progress.update(done, final=index == layout.count - 1)
                if rate > 0:
                    ahead = began + self.sent_bytes / rate - loop.time()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            if transfer.hash_last:
                digest = await self._digest(growing)
                yield cipher_of(transfer).seal_trailer(layout.count, digest)
        finally:
            if ahead_task is not None:
                ahead_task.cancel()  # run_blocking lets the thread finish before this returns
                with contextlib.suppress(asyncio.CancelledError, OSError, FlameError):
                    await ahead_task
            os.close(fd)

    async def _digest(self, growing: Growing | None) -> bytes:
        """The whole file's SHA-256: the upload's, once it ends, or the one recorded."""
        if growing is not None:
            return await growing.digest()
        current = await file_store.get(self.ctx.db, *self.transfer.key)
        if current is None or current.sha256 is None:
            raise FlameError("The upload ended without its hash.")
        return current.sha256


def open_stored(ctx: Context, transfer: Transfer) -> int:
    """Our copy, read-only (blocking): while an upload still arrives it is the partial file, which
    becomes the stored one once whole (renamed in place: a descriptor open on it stays valid)."""
    final, partial = (
        stored_path(ctx.settings, transfer),
        stored_path(ctx.settings, transfer, partial=True),
    )
    for path in (final, partial, final):
        with contextlib.suppress(FileNotFoundError):
            return os.open(path, os.O_RDONLY)
    raise FileNotFoundError(final)

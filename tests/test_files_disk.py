"""services/files/disk.py's SyncBehind: the fsync an upload runs beside its writes (every
SYNC_BYTES), and that one that fails fails the upload instead of being lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flame.services.files.disk import SyncBehind


async def test_an_fsync_starts_once_enough_is_written_and_one_at_a_time(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        behind = SyncBehind(fd, every_bytes=1000)
        os.write(fd, b"x" * 999)
        behind.written(999)
        assert behind.running is None  # not yet due
        os.write(fd, b"x" * 1001)
        behind.written(2000)
        first = behind.running
        assert first is not None and behind.synced == 2000
        behind.written(3500)  # due, but only once the one running has ended
        if not first.done():
            assert behind.running is first
        await behind.settle()
        behind.written(3500)
        assert behind.running is not first and behind.synced == 3500
        await behind.settle()
        assert os.pread(fd, 10, 0) == b"x" * 10  # the bytes are still there, read from disk
    finally:
        os.close(fd)


async def test_a_failed_fsync_fails_the_writer() -> None:
    read_end, write_end = os.pipe()  # a pipe cannot be fsynced (EINVAL)
    try:
        behind = SyncBehind(write_end, every_bytes=10)
        behind.written(10)
        with pytest.raises(OSError):
            await behind.settle()
        with pytest.raises(OSError):
            behind.written(20)  # at the next write too
    finally:
        os.close(read_end)
        os.close(write_end)

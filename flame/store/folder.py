"""The data folder on disk: private modes (0700 folders, 0600 files), durable atomic writes, fsync of
a folder. No SQL here; the database itself is db.py's."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def make_private_folder(folder: Path) -> None:
    """Create the folder (and its parents) if needed; the folder itself is 0700 either way."""
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    os.chmod(folder, FOLDER_MODE)


def secure_folder(folder: Path) -> int:
    """Make `folder` 0700, every folder under it 0700 and every file 0600, whatever modes they had
    (a folder made by hand, an old version, a copy). Symbolic links are not followed. Returns how
    many modes it changed."""
    changed = 0
    make_private_folder(folder)
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name, mode in [(d, FOLDER_MODE) for d in dirs] + [(f, FILE_MODE) for f in files]:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError):  # gone meanwhile
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode) or stat.S_IMODE(info.st_mode) == mode:
                    continue
                os.chmod(path, mode)
                changed += 1
    return changed


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically and durably: a reader, or a crash, sees the old
    content or the new, never a mix. The file is 0600 from its first byte."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_folder(path.parent)


def create_private(path: Path) -> None:
    """An empty 0600 file, unless it exists (SQLite gives its -wal and -shm files the mode of the
    database file, so the database is made 0600 before SQLite opens it)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))

"""How the daemon's C allocator is set up, before any thread starts (measured by `make bench`,
the file figure: flame/devtools/bench/files.py).

glibc gives each thread that allocates its own arena, up to 8 per core. A daemon moving a file
hands megabyte buffers between the event loop and the threads that seal, hash and write them
(services/files/), so they are allocated in one arena and freed in another, each arena growing and
trimmed on its own: the pages are faulted in and zeroed again and again. Two arenas keep them in
use: on the 1 GiB file, each daemon's CPU halved (about 9-10 s to 4.3-5.2 s) and its peak RSS over
idle fell from about 20 to 10-13 MiB. Elsewhere (another C library, no glibc) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Ask glibc for at most `arenas` malloc arenas; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))

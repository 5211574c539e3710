"""How the daemon's C allocator is set up, before any thread starts (measured by `make bench`,
the file figure: flame/devtools/bench/files.py).

glibc gives each thread that allocates its own arena, up to 8 per core. A daemon moving a file
hands megabyte buffers between the event loop and the threads that seal, hash and write them
(services/files/), so they are allocated in one arena and freed in another, each arena keeping
its own free megabytes. Two arenas share them: on the 1 GiB file (three runs each, interleaved),
the sender's peak RSS fell from 106.5-106.9 to 99.0-100.4 MiB and the receiver's from 97.6-99.2
to 95.3-97.3 MiB; CPU and speed did not move (alice 9.2-9.4 s against 9.5-9.6 s). Elsewhere
(another C library, no glibc) nothing changes.
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

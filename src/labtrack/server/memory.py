"""The C allocator of a long-running server, told to hand freed memory back.

glibc's malloc gives each thread that allocates an arena of its own, up to 8 per core, and
each arena keeps what a burst freed in it.  Its mmap threshold also rises to the largest
block freed so far (up to 32 MiB), so that once a 100,000-point history or a 1,000-run
search has been answered, every later large buffer comes from the heap, which keeps them.
A server that streamed those idles several MB above what it needs, on a login node that
many users share.  So:

- two arenas (``MALLOC_ARENA_MAX``);
- blocks of 256 KiB and more mapped on their own and unmapped when freed
  (``MALLOC_MMAP_THRESHOLD_``), and the heap's free top given back past 256 KiB
  (``MALLOC_TRIM_THRESHOLD_``): fixed, so that no burst raises them.

bench_server.py's idle RSS after the workload: 84-86 MB with two arenas alone (2026-12-04),
73 MB with all three.  The fixed thresholds rely on the HTTP server reading sockets into a
buffer of its own (server/http1.py): asyncio's own reads allocate 256 KiB each, which then
went to mmap and munmap on every request and doubled a log_metric's server CPU
(0.5 -> 1.08 ms).

A value the user set in the environment is left as set.  Elsewhere than glibc this does
nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (glibc's malloc.h).
_SETTINGS = (
    ("MALLOC_ARENA_MAX", -8, 2),              # M_ARENA_MAX
    ("MALLOC_MMAP_THRESHOLD_", -3, 256 << 10),  # M_MMAP_THRESHOLD
    ("MALLOC_TRIM_THRESHOLD_", -1, 256 << 10),  # M_TRIM_THRESHOLD
)


def tune_malloc() -> list[str]:
    """Apply the settings above where glibc is the allocator; the names of those applied."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl has a mallopt that ignores everything
    except (OSError, AttributeError):
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return [name for name, param, value in _SETTINGS
            if name not in os.environ and mallopt(param, value) == 1]

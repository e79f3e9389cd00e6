"""The C allocator of a long-running server, told to hand freed memory back.

glibc's malloc gives each thread that allocates an arena of its own, up to 8 per core, and
each arena keeps what a burst freed in it: a server that streamed a 100,000-point history or
a 1,000-run search from its pool threads then idles several MB above what it needs, on a
login node that many users share.  Two arenas give most of that back (bench_server.py's idle
RSS after the workload: 80.1 MB before, 76.5 and 79.5 MB in two runs with two arenas).

Only the arena count is set.  Fixing the mmap or trim threshold as well (to 256 KiB) gave
73 MB but doubled the CPU of a small request: asyncio reads a socket into a 256 KiB buffer,
which then went to mmap and munmap on every read (log_metric 0.5 -> 1.08 ms of server CPU).

A value the user set in the environment (``MALLOC_ARENA_MAX``) is left as set.  Elsewhere
than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (glibc's malloc.h).
_SETTINGS = (
    ("MALLOC_ARENA_MAX", -8, 2),
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

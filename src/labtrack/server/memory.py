"""The C allocator of a long-running server, told to hand freed memory back.

glibc's malloc keeps what a burst freed: each thread that allocates may get an arena of its
own (up to 8 per core), and after a large buffer is freed the threshold above which buffers
are mmap'd (and unmapped on free) grows, up to 32 MB, so the next large ones come from the
heap, which shrinks only from its top.  A server that streamed a 100,000-point history or a
1,000-run search then idles 5-7 MB above what it needs, on a login node that many users
share.  Two arenas and fixed 256 KiB thresholds give that back (bench_server.py's idle RSS
after the workload: 80.1 MB before, 73.1 MB after), at no cost measurable in its wall times.

A value the user set in the environment (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``) is left as set.  Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (glibc's malloc.h).
_SETTINGS = (
    ("MALLOC_TRIM_THRESHOLD_", -1, 256 * 1024),
    ("MALLOC_MMAP_THRESHOLD_", -3, 256 * 1024),
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

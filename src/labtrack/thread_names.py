"""The OS name of a labtrack thread: what ``top -H``, ``ps -L``, py-spy and
``/proc/PID/task/*/comm`` show.

Python 3.11 names threads for Python only, so every thread of a server read
"python3" to those tools, and a benchmark's per-thread CPU figures could not say
which was the writer and which the ingest.  Linux keeps 15 bytes of a name:
``labtrack-`` becomes ``lt-`` to leave room for the rest.
"""

from __future__ import annotations

import sys
import threading
from functools import lru_cache
from typing import Any

_PR_SET_NAME = 15  # prctl(2)
MAX_BYTES = 15


def os_name(name: str) -> bytes:
    """The OS name for a thread called ``name``."""
    if name.startswith("labtrack-"):
        name = "lt-" + name[len("labtrack-"):]
    return name.encode("utf-8", "replace")[:MAX_BYTES]


def name_os_thread() -> None:
    """Give the calling thread its Python name as its OS name (Linux; elsewhere nothing).
    Also a ``ThreadPoolExecutor`` initializer: its threads are named ``<prefix>_<n>``."""
    libc = _libc()
    if libc is None:
        return
    try:
        libc.prctl(_PR_SET_NAME, os_name(threading.current_thread().name), 0, 0, 0)
    except (AttributeError, TypeError, ValueError, OSError):
        pass  # a name is a convenience: a failing initializer would break its whole thread pool


@lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only where a thread is named: not on ``import labtrack``

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

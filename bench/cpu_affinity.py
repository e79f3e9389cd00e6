"""Placing a benchmark's processes on separate CPUs, as separate machines would be.

A job array runs on compute nodes and the tracking server on a login or service node:
the array's processes never take the server's cores.  On one machine the same split is
made with CPU affinity: ``pin_tree(server_pid, {0})`` puts the server (every thread of it,
and its children) on CPU 0, and the array's processes call ``pin_self({1})``.  Linux
keeps each thread on the CPUs it is given; a thread started later inherits its creator's.

CPUs alone do not separate them: with the kernel's autogroup scheduling
(``/proc/sys/kernel/sched_autogroup_enabled`` = 1, the default of desktop and many server
kernels) the processes of one session are one scheduling group, whose weight is shared out
among the CPUs in proportion to where its runnable threads are.  With hundreds of array
tasks on CPU 1 in the server's session, the server's threads on CPU 0 got a sliver of one
group's weight there, and other users' sessions on CPU 0 took most of it (bench/README.md,
"the stalled runs/search").  ``own_session`` gives a process a session, hence a group, of
its own, as a task on another machine has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def parse_cpus(text: str) -> frozenset[int]:
    """``"0"``, ``"0,2"``, ``"1-3"`` (taskset's list form) -> a set of CPU numbers; ValueError if
    empty, malformed, or naming a CPU this process may not use."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        first, last = int(lo), int(hi) if sep else int(lo)
        if first < 0 or last < first:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(first, last + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {text!r}")
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise ValueError(f"CPUs {sorted(cpus - allowed)} are not available (this process may use {sorted(allowed)})")
    return frozenset(cpus)


def pin_self(cpus: frozenset[int] | None) -> None:
    """Keep the calling process (its current thread, and the threads it starts) on ``cpus``."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def own_session() -> None:
    """Make the calling process a session of its own: with autogroup scheduling, its own CPU
    scheduling group (the module docstring).  A process that leads its process group already
    (a shell's job) cannot, and keeps its session."""
    try:
        os.setsid()
    except PermissionError:
        pass


def autogroup_enabled() -> bool | None:
    """Whether the kernel groups processes by session for CPU scheduling (None: no such setting)."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return None


def _thread_ids(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return []


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (psutil, imported only when a tree is pinned)."""
    import psutil

    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def pin_tree(pid: int, cpus: frozenset[int]) -> dict[int, frozenset[int]]:
    """Put every thread of ``pid`` and of its descendants on ``cpus``; returns each thread's
    affinity before, for ``restore``."""
    before: dict[int, frozenset[int]] = {}
    for proc in _tree(pid):
        for tid in _thread_ids(proc):
            try:
                before[tid] = frozenset(os.sched_getaffinity(tid))
                os.sched_setaffinity(tid, cpus)
            except (ProcessLookupError, PermissionError):
                continue  # ended meanwhile, or not ours: nothing to pin
    return before


def restore(pid: int, before: dict[int, frozenset[int]]) -> None:
    """Give the threads of ``pid``'s tree their affinity from before ``pin_tree``; a thread
    started since gets its process's first thread's."""
    for proc in _tree(pid):
        default = before.get(proc)
        for tid in _thread_ids(proc):
            cpus = before.get(tid, default)
            if cpus is None:
                continue
            try:
                os.sched_setaffinity(tid, cpus)
            except (ProcessLookupError, PermissionError):
                continue


@contextmanager
def pinned_tree(pid: int | None, cpus: frozenset[int] | None) -> Iterator[None]:
    """``pin_tree`` for the block, then ``restore`` (nothing when either is None)."""
    if pid is None or not cpus:
        yield
        return
    before = pin_tree(pid, cpus)
    try:
        yield
    finally:
        restore(pid, before)


__all__ = ["autogroup_enabled", "own_session", "parse_cpus", "pin_self", "pin_tree", "pinned_tree", "restore"]

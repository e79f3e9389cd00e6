"""``labtrack server --workers N``: N server processes on one PostgreSQL database.

The parent binds the TCP socket once, then forks N children that each run a
whole server (their own event loop, writer and connection pool) and accept on
that shared socket; the kernel hands each new connection to one of them.
PostgreSQL keeps the writes of all of them consistent: every write is a
transaction, run ids are random UUIDs, a param's first value wins by the
primary key (``ON CONFLICT``), and a model's next version number is taken
under a row lock on the model.

SQLite keeps its one-writer rule: ``--workers`` above 1 is refused there.
The parent only forwards SIGTERM/SIGINT and restarts a child that died
unexpectedly (at most ``MAX_RESTARTS`` times); it opens no database.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.settings import Settings

log = logging.getLogger("labtrack.server")
MAX_RESTARTS = 10


def check_workers(settings: Settings, backend: str) -> int:
    """The number of processes to run; refuses what cannot be served safely."""
    n = int(getattr(settings, "workers", 1) or 1)
    if n < 1 or n > 64:
        raise InvalidParameterValue("--workers takes 1 to 64 processes")
    if n > 1 and not backend.startswith("postgresql"):
        raise InvalidParameterValue(
            f"--workers {n} needs a PostgreSQL database: SQLite has one writer per database, so one "
            "labtrack process serves it (its writer commits every client's writes in groups); "
            "run without --workers, or use --backend-store-uri postgresql://...")
    if n > 1 and settings.unix_socket:
        raise InvalidParameterValue("--workers above 1 listens on TCP; drop --unix-socket")
    return n


def serve_workers(settings: Settings, n: int, run_child: Any) -> int:
    """Bind once, fork ``n`` children running ``run_child(sockets, index) -> exit code``; wait for them."""
    from tornado.netutil import bind_sockets

    sockets = bind_sockets(settings.port, address=settings.host)
    port = sockets[0].getsockname()[1]
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: a whole server on the shared socket
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = run_child(sockets, index)
            except BaseException:  # noqa: BLE001 - a child must never return into the parent's loop
                logging.getLogger("labtrack.server").exception("worker %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for i in range(n):
        start(i)
    print(f"labtrack: {n} worker processes share http://{settings.host}:{port}", flush=True)
    restarts = 0
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is None:
            continue
        exit_code = os.waitstatus_to_exitcode(status)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)  # its live gauges no longer count
        if stopping or exit_code == 0:
            continue
        if restarts >= MAX_RESTARTS:
            log.error("worker %d exited with %d; not restarted (%d restarts already)", index, exit_code, restarts)
            code = 1
            continue
        log.warning("worker %d exited with %d; starting it again", index, exit_code)
        restarts += 1
        time.sleep(0.5)
        start(index)
    for sock in sockets:
        sock.close()
    return code

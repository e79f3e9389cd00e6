"""Bounded logging: a hostile client must not be able to fill the user's quota.

A background server logs to a file in the user's home folder, which has a
quota, and any user of a login node can send it malformed requests.  So
(issue #19):

* a refused request (malformed, over a limit, unauthenticated) is one short
  line, never a traceback, and at most ``BURST`` such lines are written per
  ``WINDOW_S`` seconds; the rest are counted and summarised in one line;
* the same limit applies to what asyncio and tornado log about connections
  (asyncio logs "Too many open files" once per failed accept);
* the log file rotates at ``LOG_MAX_BYTES`` with ``LOG_BACKUPS`` old copies.

No line ever holds a header value, cookie, query string or body: the
callers pass only addresses, methods, paths and fixed reasons.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
import time
from pathlib import Path

WINDOW_S = 10.0
BURST = 20
LOG_MAX_BYTES = 5 << 20
LOG_BACKUPS = 2

log = logging.getLogger("labtrack.server")


class RateLimit:
    """At most ``burst`` events per ``window`` seconds; counts the ones it drops."""

    def __init__(self, burst: int = BURST, window: float = WINDOW_S) -> None:
        self.burst = burst
        self.window = window
        self._start = 0.0
        self._count = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def allow(self) -> tuple[bool, int]:
        """(whether to log this event, how many were dropped since the last one logged)."""
        now = time.monotonic()
        with self._lock:
            if now - self._start >= self.window:
                self._start, self._count = now, 0
            if self._count >= self.burst:
                self._dropped += 1
                return False, 0
            self._count += 1
            dropped, self._dropped = self._dropped, 0
            return True, dropped


class Refusals:
    """One short, rate-limited line per refused request or connection."""

    def __init__(self, logger: logging.Logger = log, limit: RateLimit | None = None) -> None:
        self.logger = logger
        self.limit = limit or RateLimit()

    def note(self, fmt: str, *args: object) -> None:
        ok, dropped = self.limit.allow()
        if not ok:
            return
        if dropped:
            self.logger.info("%d more refusals were not logged", dropped)
        self.logger.info(fmt, *args)


refusals = Refusals()


class RateLimitFilter(logging.Filter):
    """Drops records past the rate (for loggers whose callers we do not control)."""

    def __init__(self, limit: RateLimit | None = None, *, tracebacks_only: bool = False) -> None:
        super().__init__()
        self.limit = limit or RateLimit()
        self.tracebacks_only = tracebacks_only

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tracebacks_only and not record.exc_info:
            return True
        ok, dropped = self.limit.allow()
        if ok and dropped:
            record.msg = f"{record.getMessage()} ({dropped} similar lines were not logged)"
            record.args = ()
        if ok and record.exc_info and record.name == "asyncio":
            record.exc_info = None  # "Too many open files" needs no traceback
        return ok


def configure(log_file: str | None = None) -> None:
    """The server's logging: stderr, or a size-capped rotating file; noisy loggers rate-limited."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        try:  # private: it names the database, and a server started by hand may print its token
            os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        except OSError:
            pass
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(fmt)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("asyncio", "tornado.general", "tornado.application"):
        logging.getLogger(name).addFilter(RateLimitFilter())
    # An endpoint's unexpected error (a 500) logs its traceback: a client repeating it is rate-limited.
    logging.getLogger("labtrack.server").addFilter(RateLimitFilter(tracebacks_only=True))
    logging.getLogger("labtrack.ingest").addFilter(RateLimitFilter())  # one line per rejected record


__all__ = ["RateLimit", "RateLimitFilter", "Refusals", "configure", "refusals"]

"""Process-wide client settings: asynchronous logging and the live senders to flush at exit."""

from __future__ import annotations

import os
import weakref
from typing import Any

_async: bool | None = None
# [async_logging()] for the hot path, refreshed whenever the setting changes.
ASYNC: list[bool] = [True]
_senders: weakref.WeakSet = weakref.WeakSet()


def set_async(enabled: bool) -> None:
    """Turn non-blocking logging on (the default) or off for this process."""
    global _async
    _async = bool(enabled)
    ASYNC[0] = _async


def async_logging() -> bool:
    """Whether ``log_metric`` and friends queue (True) or call the server at once."""
    global _async
    if _async is None:  # read once: this sits on the hot path of log_metric
        value = os.environ.get("LABTRACK_ASYNC_LOGGING", "true").strip().lower()
        _async = value not in ("0", "false", "no", "off")
        ASYNC[0] = _async
    return _async


def register_sender(sender: Any) -> None:
    _senders.add(sender)


def senders() -> list[Any]:
    return list(_senders)


def reset() -> None:
    """Forget the setting (re-read the environment next time); for tests."""
    global _async
    _async = None
    async_logging()


async_logging()

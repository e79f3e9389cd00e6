"""Putting the ``lt`` client back as a fresh process has it, between tests."""

from __future__ import annotations

import labtrack as lt
from labtrack.client import config, fluent


def reset_client_state() -> None:
    """End runs a failed test left open, deliver what is queued, forget the fluent API's choices."""
    stack = fluent._stack()
    while stack:
        run = stack.pop()
        try:
            fluent._client().set_terminated(run.info.run_id, "KILLED")
        except Exception:
            pass
    for sender in config.senders():
        try:
            sender.flush(30)
        except Exception:
            pass
    fluent._state.experiment_id = None
    fluent._state.last_run_id = None
    lt.set_tracking_uri(None)  # type: ignore[arg-type]
    config.reset()

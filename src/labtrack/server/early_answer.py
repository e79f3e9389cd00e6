"""Early answers: a plain metric write is answered before it is stored.

A synchronous ``mlflow.log_metric`` waits for the server's answer before the
client does anything else, so everything the server does before answering is
the client's wait, and everything after overlaps the client's own work on its
next call.  When the writer is idle (SQLite in WAL mode: ``store/journal.py``
says why), a write planned here goes:

1. with the writer held, its run is read to be active, outside any transaction;
2. the write is appended to the server's journal, and ``{}`` is answered;
3. the write is applied as any write (its run checked again, the points, their
   latest values and chart summaries) and committed (with the journal's progress,
   every so often), before the event loop reads another request, so any request
   that follows the answer sees the write.

A run that is not active (or a journal that cannot be written) is not answered
early: the write is applied as without this path and its error, MLflow's, is
answered after.  After an early answer only the database, the disk, or another
process deleting the run between steps 1 and 3 can fail it; the journal then
goes to the spool ingest, which stores the write from it (a point stored twice
is one point), or sets it aside in the journal's ``.rejected`` file.  Only writes whose every other
failure is found before step 1 are planned (``api_tracking``): metrics without
model or dataset links, and no params (a changed param fails in the database).
With basic-auth (a permission check per request) or ``LABTRACK_EARLY_ANSWER=0``
there is no early path.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from labtrack.store.journal import Entry, Journal

log = logging.getLogger("labtrack.server")

JOURNAL_KEY = "journal"
# A handed-over journal goes to the spool ingest: this callback tells it (main.py sets it).
HAND_OVER_KEY = "journal_handed_over"


@dataclass
class EarlyWrite:
    """A write an endpoint planned for an early answer (``fn.early(ctx, args, body)``)."""

    run_id: str
    op: Callable[[Connection], None]  # the store's write (``TrackingStore.log_batch_op``)
    fields: Callable[[], bytes]  # its journal record's fields, a log_batch's: a JSON object's text on one line


def enabled() -> bool:
    return os.environ.get("LABTRACK_EARLY_ANSWER", "1") != "0"


def journal_of(ctx: Any) -> Journal | None:
    """The journal, when this server answers early (no per-request permission check)."""
    if ctx.extra.get("auth") is not None:
        return None
    journal = ctx.extra.get(JOURNAL_KEY)
    return journal if journal is not None and not journal.closed else None


def plan_of(ctx: Any, fn: Callable[..., Any], args: Any, body: bytes | None) -> tuple[Journal, EarlyWrite] | None:
    """The journal and ``fn``'s plan for this write (``fn.early``), or None when it is not answered
    early (no journal, no plan).  Raises what planning raises: a bad argument's error."""
    early = getattr(fn, "early", None)
    journal = journal_of(ctx) if early is not None else None
    if journal is None:
        return None
    plan = early(ctx, args, body)
    return None if plan is None else (journal, plan)


def answer(ctx: Any, journal: Journal, plan: EarlyWrite, reply: Callable[[], None]) -> asyncio.Future[Any] | bool:
    """Apply ``plan`` on the event loop, calling ``reply()`` first if its run is active and it is
    journaled.

    Returns True once answered (and stored, or handed to the ingest), the write's future when it
    was applied without an early answer (answer from it as usual), or False when the writer was
    busy (nothing was done).
    """
    entry: Entry | None = None

    def before(conn: Connection) -> None:
        nonlocal entry
        try:
            if not ctx.store.run_active_now(conn, plan.run_id):
                return  # the write's own check finds why, and its error is answered after
            entry = journal.append("log_batch", plan.fields())
        except Exception as e:  # noqa: BLE001 - answered after the commit instead, as without a journal
            log.warning("early answer: %s; answering after the write", e)
            return
        try:
            reply()
        except Exception:  # noqa: BLE001 - journaled: it is stored all the same
            log.exception("early answer: the reply failed; storing the write")

    def op(conn: Connection) -> None:
        plan.op(conn)
        save = journal.progress(entry) if entry is not None else None
        if save is not None:
            save(conn)

    future = ctx.store.writer.apply_now_from_loop(op, before)
    if future is None:
        return False
    if entry is None:
        return future
    failed = future.exception()
    if failed is None:
        journal.stored(entry)
    else:
        # Answered, and not stored: the spool ingest stores it from the journal.
        log.error("an answered write was not stored (%s: %s); the spool ingest stores it from the journal",
                  type(failed).__name__, failed)
        journal.hand_over()
        handed = ctx.extra.get(HAND_OVER_KEY)
        if handed is not None:
            handed()
    return True


__all__ = ["EarlyWrite", "HAND_OVER_KEY", "JOURNAL_KEY", "answer", "enabled", "journal_of", "plan_of"]

"""Spool ingest: apply the spool files of one database through the TrackingStore.

Exactly once, by construction: every record is idempotent when applied
(a run is created with the id its writer chose, identical metric points are
one point, a param may be logged again with the same value, tags overwrite),
and ``spool_progress`` remembers per file the byte offset up to which records
are applied, so whole files are not re-read and a file that grows continues
where it stopped.  A crash between applying records and saving the offset
re-applies a few records, which changes nothing.

A record the store rejects (bad input) is written, with the error, to the
file's ``<file>.rejected`` sidecar and skipped: one bad record never blocks
the rest, whatever it raises (100,000-deep JSON, ``Infinity`` where an
integer belongs...).  Only a failure of the database or the disk itself
(``_TRANSIENT``) stops a pass, to be retried on the next.  A record for a run that does not exist yet (written by another
process whose file is not ingested yet, or not yet visible on a network
filesystem) is retried on later passes, and rejected only when the run is
still missing after ``defer_s`` seconds (or, for a one-shot ``labtrack sync``,
when no other file can create it any more).

Retirement: a fully applied file whose writer is finished (its last record is
``close``, or its process is gone from this host, or it has been silent for
``idle_retire_s``) is MOVED to ``done/`` in its spool folder with its sidecar, not deleted:
it is the only copy of what a batch job logged, it costs little, and it can be
re-ingested by hand (moving it back changes nothing).  A writer that writes
again after its file was retired notices and starts a new file.

Latency and throughput (``SpoolIngest``): each pass shows every grown file's newest
value before it stores a bounded amount of history, and the ingest thread reads and
checks records while the store's writer thread commits the batch before them, each
batch together with the progress of the files it advances.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from labtrack import file_modes, spool
from labtrack.columns import STEP, VALUE, column, last
from labtrack.entities import Metric, MetricSeries, decode_double
from labtrack.errors import LabtrackError, ResourceAlreadyExists, ResourceDoesNotExist, TransientError
from labtrack.store import schema as s
from labtrack.store.dialect import cached, raw_executemany, upsert
from labtrack.store.tracking import TrackingStore
from labtrack.store.validation import LIMITS, check_series
from labtrack.thread_names import name_os_thread

log = logging.getLogger("labtrack.ingest")

DEFER_S = 300.0
IDLE_RETIRE_S = 3600.0
_PROGRESS_EVERY = 5000  # records between progress saves within one large file
# History applied by one pass of the server's thread before it makes the newest values of
# the files that grew meanwhile visible again (about 250,000 points of log_series records).
PASS_BYTES = 8 << 20
# ... or for about this long (at least one file), whichever comes first: on a machine whose
# cores the writing tasks take, a pass's history can be slow to commit.
PASS_S = 1.0
_READ_BYTES = 4 << 20  # records read and parsed at a time
_HEAD_BYTES = 4 << 10  # read for a new file's leading records (its run; read_records ends the line)
# New files whose runs are handed to the writer at a time: a pass's budget is checked between
# files, and a batch of 256 units (128 files' runs) can take seconds to create on a loaded core.
_HEAD_FILES = 16
_TAIL_BYTES = 128 << 10  # read from a file's end for its newest metric record, up to _TAIL_MAX
_TAIL_MAX = 4 << 20
# A batch for the writer thread (one transaction) is handed over at this many points or units.
_BATCH_POINTS = 25_000
_BATCH_UNITS = 256
# Records applied within a batch on the writer thread.  Those that name an experiment join it
# once the name is resolved (_resolved); the others (log_trace) are applied alone, in order.
_BATCHED_OPS = frozenset({"log_series", "log_batch", "update_run", "delete_tag", "delete_run", "restore_run",
                          spool.CLOSE_OP})
_NAMED_OPS = frozenset({"set_experiment", "set_experiment_tag", "create_run"})
# Failures of the database or the disk, not of a record: the pass stops and is retried.
_TRANSIENT = (OperationalError, OSError, MemoryError, TransientError)


@dataclass
class IngestReport:
    """What one pass did, and where its wall time went: showing the newest values
    (``preview_s``, of which ``fold_s`` is their transaction, queued behind the store's
    other writes), then the history until every batch committed (``history_s``); and the
    CPU seconds of the thread that ran it (``cpu_s``).  A pass on a starved machine is
    long while its CPU is small."""

    files: int = 0
    records: int = 0
    rejected: int = 0
    deferred: int = 0
    retired: int = 0
    bytes: int = 0
    preview_s: float = 0.0
    fold_s: float = 0.0
    history_s: float = 0.0
    cpu_s: float = 0.0

    def add(self, other: IngestReport) -> None:
        for name in ("files", "records", "rejected", "deferred", "retired", "bytes", "preview_s", "fold_s",
                     "history_s", "cpu_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def timings(self) -> str:
        """The pass's timings as one log phrase."""
        return (f"pass {self.preview_s + self.history_s:.2f} s: newest values {self.preview_s:.2f} s "
                f"(folding {self.fold_s:.2f} s), history {self.history_s:.2f} s; {self.cpu_s:.2f} CPU s")


class _MissingRun(Exception):
    """The record's run does not exist (yet)."""


class _Refused(LabtrackError):
    """A record the store refused within a batch (it is applied again alone, and rejected)."""


@dataclass
class _FileState:
    offset: int = 0  # applied, or queued for the writer
    seq: int = 0
    closed: bool = False
    tail_checked: bool = False
    deferred_since: float | None = None
    saved: int = 0  # the offset spool_progress holds
    queued: int = 0  # the end of the file's last unit handed to the writer
    headed: bool = False  # the records before its first metric record are applied (its run exists)
    previewed: int = 0  # the file's size when its newest values were last made visible


@dataclass
class _Group:
    """Consecutive log_batch records of one run, or consecutive log_series records of one run
    (metrics only), applied as one store call."""

    run_id: str
    records: list[spool.SpoolRecord] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    series: list[MetricSeries] = field(default_factory=list)
    points: int = 0
    end: int = 0  # where the record after the group's last one starts

    def try_add_series(self, rec: spool.SpoolRecord, series: list[MetricSeries]) -> bool:
        """Add a log_series record without params or tags, within one log-series request's limit."""
        if rec.data["run_id"] != self.run_id or self.metrics or self.params or self.tags:
            return False
        n = sum(len(s_.values) for s_ in series)
        if self.records and self.points + n > LIMITS["series_points"]:
            return False
        self.records.append(rec)
        self.series += series
        self.points += n
        return True

    def try_add(self, rec: spool.SpoolRecord, batch: tuple[list[Metric], list[tuple[str, str]],
                                                          list[tuple[str, str]]]) -> bool:
        metrics, params, tags = batch
        if rec.data["run_id"] != self.run_id or self.series:
            return False
        if any(k in self.params and self.params[k] != v for k, v in params):
            return False  # let the store judge the second value against the first, alone
        n_params = len(self.params.keys() | {k for k, _ in params})
        n_tags = len(self.tags.keys() | {k for k, _ in tags})
        n_metrics = len(self.metrics) + len(metrics)
        if self.records and (n_metrics > LIMITS["batch_metrics"] or n_params > LIMITS["batch_params"]
                             or n_tags > LIMITS["batch_tags"]
                             or n_metrics + n_params + n_tags > LIMITS["batch_total"]):
            return False
        self.records.append(rec)
        self.metrics += metrics
        self.params.update(params)
        for k, v in tags:
            self.tags.pop(k, None)  # the last value wins, as if applied in order
            self.tags[k] = v
        return True


@dataclass
class _Unit:
    """Records of one file that are one step of a batch: a group, or one record."""

    path: Path
    state: _FileState
    records: list[spool.SpoolRecord]
    end: int  # where the record after the last one starts: the file's progress once applied
    write: Callable[[Connection], Any]
    points: int
    force: bool
    report: IngestReport


@dataclass
class _Batch:
    """Units handed to the store's writer thread as ONE operation (one transaction), each
    with its file's progress; the ingest thread reads and checks the next batch meanwhile."""

    units: list[_Unit]
    future: Future[None]


class SpoolIngest:
    """Applies the spool files in ``folder`` to ``store``; one instance per database.

    A pass of the server's thread (``run_once``) first makes every changed file's newest
    metric values visible (``_preview``: one short transaction that folds the last point of
    each series of each file's last ``log_series`` record into its run's latest values, not
    its history; files whose run is not created yet get it created first, within the pass's
    ``pass_s``, and their values folded in a second transaction),
    then applies history in file order for about ``pass_bytes`` of records or ``pass_s``
    seconds, continuing on the next pass where this one stopped.  So a task's latest value shows within a
    pass of its being written however large the backlog of history is.  Folding is a
    maximum by (step, timestamp, value) (and min/max), so folding a record's points early
    and again with the history ends exactly where folding them once would; a record that
    is rejected later has its run's latest values recomputed from the stored history.
    """

    def __init__(self, store: TrackingStore, folder: str | os.PathLike, *, defer_s: float = DEFER_S,
                 idle_retire_s: float = IDLE_RETIRE_S,
                 on_progress: Callable[[int], None] | None = None,
                 pass_bytes: int = PASS_BYTES, pass_s: float = PASS_S) -> None:
        self.store = store
        self.folder = Path(folder)
        self.defer_s = defer_s
        self.idle_retire_s = idle_retire_s
        self.on_progress = on_progress
        self.pass_bytes = pass_bytes
        self.pass_s = pass_s
        self._deadline = 0.0
        self._files: dict[str, _FileState] | None = None
        self._experiments: dict[str, str] = {}
        self._reload = False  # set by another thread: reload every file's progress before the next pass
        self._building: list[_Unit] = []  # the next batch
        self._building_points = 0
        self._inflight: _Batch | None = None  # the batch the writer is storing
        self._cursor = ""  # the file the next pass starts at (passes go round the folder)

    # -- passes -------------------------------------------------------------------------
    def pending_bytes(self) -> int:
        """Bytes of spool files not applied yet (for a progress bar)."""
        states = self._states()
        total = 0
        for path in spool.waiting_files(self.folder):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            total += max(0, size - states.get(path.name, _FileState()).offset)
        return total

    def run_once(self) -> IngestReport:
        """One pass, as the server does every second: the newest values of every file that
        grew, then about ``pass_bytes`` (or ``pass_s``) of history, starting where the last
        pass stopped."""
        return self._guarded(self._pass)

    def run_all(self) -> IngestReport:
        """Apply everything there is (``labtrack sync``): pass again while passes make
        progress, then reject records whose run no file can create any more."""
        return self._guarded(self._drain)

    def _guarded(self, fn: Callable[[], IngestReport]) -> IngestReport:
        try:
            return fn()
        except BaseException:
            # What is known in memory may be ahead of what committed: wait for the writer,
            # then start again from the progress the database holds.
            batch, self._inflight = self._inflight, None
            self._building, self._building_points = [], 0
            if batch is not None:
                try:
                    batch.future.result()
                except BaseException:  # noqa: BLE001 - the error that stopped the pass is raised
                    pass
            self._files = None
            raise

    def reload(self) -> None:
        """Read every file's progress from the database again before the next pass: a journal
        handed over by its server (store/journal.py) has progress that this ingest never saw."""
        self._reload = True

    def recover_journals(self) -> IngestReport:
        """Apply what the journals of servers that are gone hold beyond their progress (a
        server's start, before it answers anything: every write a killed server answered is
        stored before any request can look for it)."""
        def go() -> IngestReport:
            report = IngestReport()
            revealed = spool.reveal_orphaned_journals(self.folder, self.idle_retire_s)
            if revealed:
                self._files = None
                for path in revealed:
                    self._ingest_file(path, True, report, False)
                self._finish(revealed, report)
            return report
        return self._guarded(go)

    def _start(self) -> list[Path]:
        """The files of a pass, after the journals of servers that are gone were revealed."""
        if spool.reveal_orphaned_journals(self.folder, self.idle_retire_s) or self._reload:
            self._reload = False
            self._files = None  # between passes nothing is in flight: the database's progress is all there is
        return spool.waiting_files(self.folder)

    def _pass(self) -> IngestReport:
        report = IngestReport()
        t0, cpu0 = time.perf_counter(), time.thread_time()
        files = self._start()
        # One budget for the pass's new files' runs and its history, so neither makes the
        # next pass's newest values wait longer than about ``pass_s``.
        self._deadline = time.monotonic() + self.pass_s
        self._preview(files, report)
        t1 = time.perf_counter()
        report.preview_s = t1 - t0
        names = [str(p) for p in files]
        first = bisect.bisect_left(names, self._cursor)
        visited = []
        self._cursor = ""
        for path in files[first:] + files[:first]:
            visited.append(path)
            self._ingest_file(path, False, report, True)
            if self._spent(report):
                self._cursor = str(path)  # it may have more: the next pass starts with it
                break
        self._finish(visited, report)
        report.history_s = time.perf_counter() - t1
        report.cpu_s = time.thread_time() - cpu0
        return report

    def _spent(self, report: IngestReport) -> bool:
        """Whether this pass has applied its share of history (``pass_bytes`` or ``pass_s``)."""
        return report.bytes >= self.pass_bytes or time.monotonic() >= self._deadline

    def _drain(self) -> IngestReport:
        report = IngestReport()
        touched: set[str] = set()

        def loop(force: bool) -> None:
            files = self._start()
            for path in files:
                if self._ingest_file(path, force, report, False):
                    touched.add(path.name)
            self._finish(files, report)

        while True:
            before = report.records + report.rejected
            deferred = report.deferred
            loop(False)
            if report.deferred == deferred:
                break
            if report.records + report.rejected == before:
                loop(True)
                break
        report.files, report.deferred = len(touched), 0
        return report

    def _finish(self, visited: list[Path], report: IngestReport) -> None:
        """The end of a pass: every batch committed, then finished files retired."""
        self._flush_all()
        for path in visited:
            state = self._states().get(path.name)
            if state is not None and state.deferred_since is None:
                self._maybe_retire(path, state, report)
        self._flush_all()

    # -- newest values first --------------------------------------------------------------
    def _preview(self, files: list[Path], report: IngestReport) -> None:
        """Make the newest metric values of every file that grew visible.

        First those of files whose run exists, in one short transaction, before anything
        else of this pass is written: a task that is finishing has had its run for long,
        and its newest value must not wait for the runs of the files that appeared since.
        Then the new files get the records before their first metric record applied (their
        experiment and run), until the pass's budget is spent (the others on later passes:
        at a job array's start hundreds of runs are created, which takes long on a loaded
        machine), and their newest values are folded in a second transaction.
        """
        grown: list[tuple[Path, _FileState, int]] = []
        for path in files:
            state = self._states().setdefault(path.name, _FileState())
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size > state.offset and size > state.previewed:
                grown.append((path, state, size))
        self._fold_newest([g for g in grown if g[1].headed], report)
        headed: list[tuple[Path, _FileState, int]] = []
        for path, state, size in grown:
            if state.headed:
                continue
            if headed and time.monotonic() >= self._deadline:
                break  # the rest on the next pass (previewed stays behind: they are seen again)
            self._apply_head(path, state, report)
            # The head is read from the file as it is now, which may end past ``size`` (the
            # task wrote on meanwhile): its newest values are looked for up to the end seen now.
            try:
                size = max(size, path.stat().st_size)
            except FileNotFoundError:
                pass
            headed.append((path, state, size))
            if len(headed) % _HEAD_FILES == 0:
                self._cycle()  # hand them over now, so the budget counts runs created, not queued
        if headed:  # the runs first (in batches), then their newest values
            self._flush_all()
            for path, state, _ in headed:
                if state.offset != state.saved:
                    self._save(path.name, state.offset, state.seq, state)
            self._fold_newest(headed, report)

    def _fold_newest(self, grown: list[tuple[Path, _FileState, int]], report: IngestReport) -> None:
        """Fold the newest point of each series of each file's last log_series record into its
        run's latest values: one transaction, which the history of these points folds again."""
        latest: dict[str, list[MetricSeries]] = {}
        for path, state, size in grown:
            state.previewed = size
            newest = _newest_series(path, state.offset, size)
            if newest is not None:
                latest.setdefault(newest[0], []).extend(newest[1])
        if latest:
            t = time.perf_counter()
            try:
                self.store.fold_latest(latest)
            except _TRANSIENT:
                raise
            except Exception as e:  # noqa: BLE001 - the history shows them in order; never block it
                log.warning("spool: newest values not shown ahead of their history: %s", _message(e))
            finally:
                report.fold_s += time.perf_counter() - t

    def _apply_head(self, path: Path, state: _FileState, report: IngestReport) -> bool:
        """Queue the file's records before its first metric record (set_experiment, create_run...);
        True if there were some."""
        chunk = spool.read_records(path, state.offset, _HEAD_BYTES)
        items: list[Any] = sorted([*chunk.records, *chunk.bad], key=lambda r: r.offset)
        n = 0
        while n < len(items) and isinstance(items[n], spool.SpoolRecord) and _grouping(items[n]) is None:
            n += 1
        # Done once a metric record (or a bad line) follows, or the head is longer than a read.
        state.headed = n < len(items) or chunk.more
        if n == 0:
            return False
        end = items[n].offset if n < len(items) else chunk.end_offset
        start = state.offset
        stopped = self._apply_items(path, items[:n], end, state, report, False)
        state.offset = end if stopped is None else stopped
        if state.offset != start:
            report.bytes += state.offset - start
            if self.on_progress is not None:
                self.on_progress(state.offset - start)
        return True

    # -- one file ---------------------------------------------------------------------------
    def _ingest_file(self, path: Path, force: bool, report: IngestReport, bounded: bool) -> bool:
        """Apply what is new in ``path``; True if there was something."""
        sid = path.name
        state = self._states().setdefault(sid, _FileState())
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        if size > state.offset:
            report.files += 1
            self._apply_new(path, state, report, force, bounded)
            return True
        if not state.closed and not state.tail_checked and state.offset == size:
            # Progress loaded from the database: was the file finished before we restarted?
            state.tail_checked = True
            state.closed = _ends_with_close(path, size)
        return False

    def _apply_new(self, path: Path, state: _FileState, report: IngestReport, force: bool,
                   bounded: bool = False) -> None:
        while True:
            start = state.offset
            chunk = spool.read_records(path, start, _READ_BYTES)
            items: list[Any] = sorted([*chunk.records, *chunk.bad], key=lambda r: r.offset)
            stopped = self._apply_items(path, items, chunk.end_offset, state, report, force)
            if stopped is None:
                state.offset = chunk.end_offset
                state.deferred_since = None
            else:
                state.offset = stopped
            if state.offset != start:
                report.bytes += state.offset - start
                if self.on_progress is not None:
                    self.on_progress(state.offset - start)
            if state.offset not in (state.queued, state.saved):
                # The progress is not in a unit handed to the writer: save it once they committed.
                if _stop_for(state, self._flush_all()) is not None:
                    return
                if state.offset != state.saved:
                    self._save(path.name, state.offset, state.seq, state)
            if stopped is not None or not chunk.more or (bounded and self._spent(report)):
                return
            if _stop_for(state, self._flush_all()) is not None:  # the next chunk starts after what landed
                return

    def _apply_items(self, path: Path, items: list[Any], end_offset: int, state: _FileState,
                     report: IngestReport, force: bool) -> int | None:
        """Apply in order; return the offset of the first record that must wait, else None.

        ``end_offset`` is where the last item ends.  Groups of metric records, and the
        records in ``_BATCHED_OPS``, are queued for the writer thread (``_queue``); the
        others are applied after everything queued before them committed.
        """
        group: _Group | None = None
        since_save = 0
        for i, item in enumerate(items):
            if isinstance(item, spool.BadLine):
                stop = self._flush(path, group, state, report, force)
                if stop is not None:
                    return stop
                group = None
                self._reject(path, item.offset, item.text, item.error, report)
                continue
            rec: spool.SpoolRecord = item
            nxt = items[i + 1].offset if i + 1 < len(items) else end_offset
            grouping = _grouping(rec)
            if grouping is not None:
                # Metric records of one run (the sender's): consecutive ones become one bulk write.
                parse, add = grouping
                try:
                    parsed = parse(rec.data)
                except _TRANSIENT:
                    raise
                except Exception as e:  # noqa: BLE001 - any bad record is rejected, never fatal
                    stop = self._flush(path, group, state, report, force)
                    if stop is not None:
                        return stop
                    group = None
                    self._reject(path, rec.offset, rec.data, _message(e), report)
                    continue
                if group is not None and add(group, rec, parsed):
                    group.end = nxt
                    continue
                stop = self._flush(path, group, state, report, force)
                if stop is not None:
                    return stop
                group = _Group(rec.data["run_id"])
                add(group, rec, parsed)
                group.end = nxt
                continue
            stop = self._flush(path, group, state, report, force)
            if stop is not None:
                return stop
            group = None
            data = rec.data if rec.op in _BATCHED_OPS else self._resolved(rec)
            if data is not None:
                stop = _stop_for(state, self._queue(_Unit(path, state, [rec], nxt, partial(self._apply_batched, data),
                                                          0, force, report)))
                if stop is not None:
                    return stop
                continue
            stop = _stop_for(state, self._flush_all())
            if stop is None:
                stop = self._apply_one(path, rec, state, report, force)
            if stop is not None:
                return stop
            since_save += 1
            if since_save >= _PROGRESS_EVERY:
                self._save(path.name, nxt, state.seq, state)
                since_save = 0
        return self._flush(path, group, state, report, force)

    def _flush(self, path: Path, group: _Group | None, state: _FileState, report: IngestReport,
               force: bool) -> int | None:
        """Queue ``group`` for the writer; the offset where this file must stop, if it must."""
        if group is None or not group.records:
            return None
        try:  # the store's checks run here, while the writer stores the batch before
            op: Callable[[Connection], None] | None = self.store.log_batch_op(
                group.run_id, group.metrics, list(group.params.items()), list(group.tags.items()),
                series=group.series)
        except _TRANSIENT:
            raise
        except Exception:  # noqa: BLE001 - find the bad record(s) one by one
            op = None
        if op is not None:
            return _stop_for(state, self._queue(_Unit(path, state, group.records, group.end, op,
                                                      group.points or len(group.metrics), force, report)))
        stop = _stop_for(state, self._flush_all())
        if stop is not None:
            return stop
        for rec in group.records:
            stop = self._apply_one(path, rec, state, report, force)
            if stop is not None:
                return stop
        return None

    # -- batches for the writer thread -----------------------------------------------------
    def _queue(self, unit: _Unit) -> list[tuple[_FileState, int]]:
        """Add ``unit`` to the next batch; hand that over once it is large enough.  Returns
        the files that must stop (``_settle``)."""
        self._building.append(unit)
        self._building_points += unit.points
        unit.state.queued = unit.end
        if self._building_points >= _BATCH_POINTS or len(self._building) >= _BATCH_UNITS:
            return self._cycle()
        return []

    def _cycle(self) -> list[tuple[_FileState, int]]:
        """Wait for the batch in flight, then hand over the one built meanwhile."""
        stops = self._settle()
        units, self._building, self._building_points = self._building, [], 0
        if stops:  # a file that must wait for a record: nothing after that record is applied
            stopped = {id(st) for st, _ in stops}
            units = [u for u in units if id(u.state) not in stopped]
        if units:
            writes = [u.write for u in units]
            # Each file's progress after its last unit: one statement for the batch's files.
            progress = list({u.path.name: {"spool_id": u.path.name, "applied_offset": u.end,
                                           "applied_seq": max(r.seq for r in u.records)} for u in units}.values())

            def write(conn: Connection) -> None:
                for apply in writes:
                    apply(conn)
                _save_progress(conn, progress)  # the records and the progress past them commit together
            self._inflight = _Batch(units, self.store.writer.submit(write))
        return stops

    def _flush_all(self) -> list[tuple[_FileState, int]]:
        """Everything queued committed (before a record that must be applied alone, in order)."""
        return self._cycle() + self._settle()

    def _settle(self) -> list[tuple[_FileState, int]]:
        """Wait for the batch in flight.  If the store refused it, nothing of it is stored:
        its units are applied again one record at a time (a bad record rejected alone).
        Returns (file state, offset) for each file that must stop at a record waiting for its run."""
        batch, self._inflight = self._inflight, None
        if batch is None:
            return []
        try:
            batch.future.result()
        except _TRANSIENT:
            raise
        except Exception:  # noqa: BLE001 - a missing run or a bad record: decided record by record
            pass
        else:
            for u in batch.units:
                u.state.saved = max(u.state.saved, u.end)
                u.state.seq = max(u.state.seq, *(r.seq for r in u.records))
                for rec in u.records:
                    if rec.op == spool.CLOSE_OP:
                        u.state.closed = True
                    else:
                        u.report.records += 1
            return []
        stops: list[tuple[_FileState, int]] = []
        for u in batch.units:
            if any(st is u.state for st, _ in stops):
                continue
            for rec in u.records:
                stop = self._apply_one(u.path, rec, u.state, u.report, u.force)
                if stop is not None:
                    u.state.offset = u.state.queued = stop  # nothing of the file after it is applied
                    self._save(u.path.name, stop, u.state.seq, u.state)
                    stops.append((u.state, stop))
                    break
            else:
                self._save(u.path.name, u.end, u.state.seq, u.state)
        return stops

    def _apply_one(self, path: Path, rec: spool.SpoolRecord, state: _FileState, report: IngestReport,
                   force: bool) -> int | None:
        try:
            self._apply(rec.data)
        except _MissingRun as e:
            now = time.monotonic()
            if state.deferred_since is None:
                state.deferred_since = now
            if not force and now - state.deferred_since < self.defer_s:
                report.deferred += 1
                return rec.offset  # try again on a later pass
            self._reject(path, rec.offset, rec.data, str(e), report)
            state.deferred_since = None
        except _TRANSIENT:
            raise
        except Exception as e:  # noqa: BLE001 - any bad record is rejected, never fatal
            self._reject(path, rec.offset, rec.data, _message(e), report)
            self._undo_preview(rec)
        else:
            if rec.op == spool.CLOSE_OP:
                state.closed = True
            else:
                report.records += 1
        state.seq = max(state.seq, rec.seq)  # applied or rejected: done with it
        return None

    def _undo_preview(self, rec: spool.SpoolRecord) -> None:
        """A rejected log_series record's points may have been folded by ``_preview``:
        its run's latest values of those keys are recomputed from the stored history."""
        if rec.op != "log_series":
            return
        run_id, series = rec.data.get("run_id"), rec.data.get("series")
        if not isinstance(run_id, str) or not isinstance(series, list):
            return
        keys = [s_["key"] for s_ in series if isinstance(s_, dict) and isinstance(s_.get("key"), str)]
        if keys:
            self.store.refold_latest(run_id, keys)

    # -- one record -------------------------------------------------------------------------
    def _apply(self, d: dict[str, Any]) -> None:
        op = d["op"]
        store = self.store
        if op == "set_experiment":
            exp_id = self._experiment_id(d)
            for t in d.get("tags") or []:  # tags given to create_experiment; they overwrite
                store.set_experiment_tag(exp_id, t["key"], t["value"])
        elif op == "set_experiment_tag":
            store.set_experiment_tag(self._experiment_id(d), d["key"], d["value"])
        elif op == "create_run":
            tags = {t["key"]: t["value"] for t in d.get("tags") or []}
            store.create_run(self._experiment_id(d), user_id=d.get("user_id") or "",
                             start_time=_opt_int(d.get("start_time")), run_name=d.get("run_name") or None,
                             tags=tags, run_id=d["run_id"])
        elif op == "update_run":
            _on_run(d, lambda: store.update_run(d["run_id"], status=d.get("status"),
                                                end_time=_opt_int(d.get("end_time")),
                                                run_name=d.get("run_name") or None))
        elif op == "log_batch":
            metrics, params, tags = _batch_of(d)
            _on_run(d, lambda: store.log_batch(d["run_id"], metrics, params, tags))
        elif op == "log_series":  # the background sender's bulk form: one store call, no per-point objects
            series, params, tags = _series_of(d)
            _on_run(d, lambda: store.log_batch(d["run_id"], params=params, tags=tags, series=series))
        elif op == "delete_tag":
            _on_run(d, lambda: store.get_run(d["run_id"]))
            try:
                store.delete_tag(d["run_id"], d["key"])
            except ResourceDoesNotExist:
                pass  # already deleted: applying twice changes nothing
        elif op == "delete_run":
            _on_run(d, lambda: store.delete_run(d["run_id"]))
        elif op == "restore_run":
            _on_run(d, lambda: store.restore_run(d["run_id"]))
        elif op == "log_trace":  # a finished trace from lt's tracing (store/traces.py)
            from labtrack.store.traces import TraceStore

            t = d["trace"]
            TraceStore(store).record_trace(self._experiment_id(d), t["spans"], trace_id=t.get("trace_id"),
                                           tags=t.get("tags") or {}, metadata=t.get("trace_metadata") or {})

    def _resolved(self, rec: spool.SpoolRecord) -> dict[str, Any] | None:
        """A record that names its experiment, with the experiment's id instead (looked up, or
        created, now: never inside a batch that may roll back), so that it can join a batch;
        None for a record to apply alone."""
        if rec.op not in _NAMED_OPS:
            return None
        try:
            exp_id = self._experiment_id(rec.data)
        except _TRANSIENT:
            raise
        except Exception:  # noqa: BLE001 - applied alone, which rejects it
            return None
        data = {k: v for k, v in rec.data.items() if k != "experiment_name"}
        data["experiment_id"] = exp_id
        return data

    def _apply_batched(self, d: dict[str, Any], conn: Connection) -> None:
        """``_apply`` on the writer thread, inside a batch (its store calls join the batch's transaction)."""
        try:
            self._apply(d)
        except _MissingRun as e:  # expected refusals: no traceback in the writer's log
            raise ResourceDoesNotExist(str(e)) from None
        except (LabtrackError, *_TRANSIENT):
            raise
        except Exception as e:  # noqa: BLE001 - a malformed record: rejected when applied alone
            raise _Refused(_message(e)) from None

    def _experiment_id(self, d: dict[str, Any]) -> str:
        """The record's experiment: its id, or its NAME resolved (and created) now."""
        name = d.get("experiment_name")
        if not name:
            exp_id = d.get("experiment_id")
            return "0" if exp_id in (None, "") else str(exp_id)
        if name in self._experiments:
            return self._experiments[name]
        try:
            exp_id = self.store.get_experiment_by_name(name).experiment_id
        except ResourceDoesNotExist:
            try:
                exp_id = self.store.create_experiment(name)
            except ResourceAlreadyExists:  # created over HTTP a moment ago
                exp_id = self.store.get_experiment_by_name(name).experiment_id
        self._experiments[name] = exp_id
        return exp_id

    # -- bookkeeping ----------------------------------------------------------------------
    def _states(self) -> dict[str, _FileState]:
        if self._files is None:
            sp = s.spool_progress
            rows = self.store.read(lambda conn: conn.execute(select(sp)).all())
            self._files = {r.spool_id: _FileState(r.applied_offset, r.applied_seq, saved=r.applied_offset)
                           for r in rows}
        return self._files

    def _save(self, sid: str, offset: int, seq: int, state: _FileState) -> None:
        self.store.write(progress_op(sid, offset, seq))
        state.saved = offset

    def _reject(self, path: Path, offset: int, record: Any, error: str, report: IngestReport) -> None:
        report.rejected += 1
        try:
            # ASCII: a record may hold lone surrogates, which UTF-8 cannot write.
            line = json.dumps({"offset": offset, "error": error, "record": record}, default=str) + "\n"
        except (ValueError, RecursionError):
            line = json.dumps({"offset": offset, "error": error, "record": str(record)[:2000]}) + "\n"
        side = path.with_name(path.name + spool.REJECTED_SUFFIX)
        fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        log.warning("spool %s: record at byte %d rejected: %s", path.name, offset, error)

    def _maybe_retire(self, path: Path, state: _FileState, report: IngestReport) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if st.st_size > state.offset and not self._writer_gone(path, st.st_mtime):
            return  # unread records, or a torn line its live writer is still finishing
        if not (state.closed or self._writer_gone(path, st.st_mtime)):
            return
        done = path.parent / spool.DONE_FOLDER  # a legacy folder's files retire within it
        file_modes.make_folder(done)
        target = done / path.name
        os.replace(path, target)
        side = path.with_name(path.name + spool.REJECTED_SUFFIX)
        if side.exists():
            os.replace(side, done / side.name)
        report.retired += 1
        # A writer that appended between our last read and the move wrote into the
        # moved file (same inode): apply that too, so nothing is stranded in done/.
        if target.stat().st_size > state.offset:
            self._apply_new(target, state, report, force=True)

    def _writer_gone(self, path: Path, mtime: float) -> bool:
        return spool.writer_gone(path, mtime, self.idle_retire_s)


class IngestThread:
    """Runs ``SpoolIngest`` every ``interval`` seconds on a daemon thread (the server's)."""

    def __init__(self, ingest: SpoolIngest, interval: float = 1.0,
                 on_applied: Callable[[IngestReport], None] | None = None) -> None:
        self.ingest = ingest
        self.interval = interval
        self.on_applied = on_applied
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labtrack-ingest", daemon=True)

    def start(self) -> IngestThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the pass under way (its records are applied and their offsets saved)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        name_os_thread()
        last_trace = -1e9
        failed = 0  # passes failed in a row: said once they end, since only the first has a traceback
        while not self._stop.is_set():
            try:
                report = self.ingest.run_once()
            except Exception as e:  # a full disk or a lost database must not end ingest for good
                failed += 1
                # A traceback at most every 10 minutes: a pass retries every second.
                if time.monotonic() - last_trace > 600:
                    last_trace = time.monotonic()
                    log.exception("spool ingest failed; retrying every %.0f s", self.interval)
                else:
                    log.debug("spool ingest failed again: %s", type(e).__name__)
                report = IngestReport()
            else:
                if failed:
                    log.warning("spool ingest: a pass succeeded after %d failed in a row", failed)
                failed = 0
            busy = bool(report.records or report.rejected or report.retired)
            if busy:
                log.info("spool: %d records applied, %d rejected, %d files retired; %s",
                         report.records, report.rejected, report.retired, report.timings())
                if self.on_applied is not None:
                    self.on_applied(report)
            # After a pass that applied something, the next one starts at once: while a job
            # array writes, what it wrote meanwhile shows without waiting out the interval.
            self._stop.wait(0 if busy else self.interval)


def _on_run(d: dict[str, Any], fn: Callable[[], Any]) -> None:
    try:
        fn()
    except ResourceDoesNotExist as e:
        raise _MissingRun(e.message) from e



def _grouping(rec: spool.SpoolRecord) -> tuple[Callable[[dict[str, Any]], Any], Callable[..., bool]] | None:
    """How a record joins a bulk write of its run (its parser and _Group's adder), or None if it can't."""
    if rec.op == "log_series" and not rec.data.get("params") and not rec.data.get("tags"):
        return (lambda data: _series_of(data)[0]), _Group.try_add_series
    if rec.op == "log_batch":
        return _batch_of, _Group.try_add
    return None

def _batch_of(d: dict[str, Any]) -> tuple[list[Metric], list[tuple[str, str]], list[tuple[str, str]]]:
    metrics = [Metric(key=m["key"], value=decode_double(m["value"]), timestamp=int(m["timestamp"]),
                      step=int(m.get("step") or 0)) for m in d.get("metrics") or []]
    params = [(p["key"], p["value"]) for p in d.get("params") or []]
    tags = [(t["key"], t["value"]) for t in d.get("tags") or []]
    return metrics, params, tags


def _series_of(d: dict[str, Any]) -> tuple[list[MetricSeries], list[tuple[str, str]], list[tuple[str, str]]]:
    """A log_series record's columns (packed as ``runs/log-series`` sends them, or plain lists)."""
    series = [MetricSeries(key=s_["key"], steps=column(s_["steps"], STEP),
                           timestamps=column(s_["timestamps"], STEP), values=column(s_["values"], VALUE))
              for s_ in d["series"]]
    params = [(p["key"], p["value"]) for p in d.get("params") or []]
    tags = [(t["key"], t["value"]) for t in d.get("tags") or []]
    return series, params, tags


def _newest_series(path: Path, offset: int, size: int) -> tuple[str, list[MetricSeries]] | None:
    """(run id, the last point of each key) of the last complete log_series record (metrics
    only) between ``offset`` and ``size``, if those points are valid; read from the file's end."""
    if size <= offset:
        return None
    window = _TAIL_BYTES
    while True:
        start = max(offset, size - window)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(size - start)
        except OSError:
            return None
        for raw in _lines_backward(data, start > offset):
            if b'"log_series"' not in raw:
                continue
            try:
                rec = json.loads(raw)
                if (not isinstance(rec, dict) or rec.get("v") != spool.VERSION or rec.get("op") != "log_series"
                        or rec.get("params") or rec.get("tags") or not isinstance(rec.get("run_id"), str)):
                    continue
                return rec["run_id"], [p for p in map(_last_point, rec["series"]) if p.values]
            except _TRANSIENT:
                raise
            except Exception:  # noqa: BLE001 - a record the history pass will reject: nothing to show
                continue
        if start <= offset or window >= _TAIL_MAX:
            return None
        window *= 4


def _lines_backward(data: bytes, skip_first: bool) -> Iterator[bytes]:
    """The complete lines of ``data``, last first (a torn last line is left out, and the first
    one too when ``skip_first``: it may begin inside a line); found with ``rfind``, so a
    preview that stops at the last record never splits the whole window."""
    end = data.rfind(b"\n")
    while end >= 0:
        nl = data.rfind(b"\n", 0, end)
        if nl < 0 and skip_first:
            return
        yield data[nl + 1:end]
        end = nl


def _stop_for(state: _FileState, stops: list[tuple[_FileState, int]]) -> int | None:
    """The offset where the file of ``state`` must stop, if ``stops`` names it."""
    return next((offset for st, offset in stops if st is state), None)


def _last_point(item: Any) -> MetricSeries:
    """One series of a log_series record reduced to its last point, checked as a series of one:
    a packed column is decoded only at its end, so a preview costs the same however long the
    record.  Any subset of a record's points may be folded ahead of its history (folding is a
    maximum), and a training loop logs its newest point last."""
    return check_series([MetricSeries(item["key"], last(item["steps"], STEP), last(item["timestamps"], STEP),
                                      last(item["values"], VALUE))])[0]


def progress_op(sid: str, offset: int, seq: int) -> Callable[[Connection], None]:
    """The write that records a file's progress (``spool_progress``)."""
    return partial(_save_progress, rows=[{"spool_id": sid, "applied_offset": offset, "applied_seq": seq}])


def _upsert_progress(conn: Connection) -> Any:
    sp = s.spool_progress
    stmt = upsert(conn, sp)
    return stmt.on_conflict_do_update(
        index_elements=["spool_id"],
        set_={"applied_offset": stmt.excluded.applied_offset, "applied_seq": stmt.excluded.applied_seq},
    ).compile(dialect=conn.dialect, column_keys=["spool_id", "applied_offset", "applied_seq"])


def _save_progress(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Files' progress rows (``spool_progress``), one statement built once (building it costs more than running it)."""
    raw_executemany(conn, cached(conn, "upsert_spool_progress_sql", _upsert_progress), rows)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _message(e: BaseException) -> str:
    if isinstance(e, LabtrackError):
        return e.message
    return f"malformed record: {type(e).__name__}: {str(e)[:500]}"


def _ends_with_close(path: Path, size: int) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, size - 256))
            tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return json.loads(tail).get("op") == spool.CLOSE_OP
    except (OSError, ValueError, AttributeError):
        return False


__all__ = ["DEFER_S", "IDLE_RETIRE_S", "IngestReport", "IngestThread", "SpoolIngest", "progress_op"]

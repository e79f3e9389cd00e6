"""The background sender: queues metrics, params and tags and delivers them in batches.

``log_metric`` appends a tuple to a deque and returns.  One daemon thread drains
the deque in order, packing consecutive writes for the same run into
``runs/log-batch`` calls within MLflow's limits.  A flush marker travels
through the same queue, so ``flush()`` returns exactly when everything queued
before it was delivered (or rejected).  A batch that the server rejects is
bisected until the offending write is isolated: every good write still lands,
and the rejection is raised at the next ``flush()``.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import weakref
from collections import deque
from typing import Any

from labtrack.client.transport import LABTRACK_API, MLFLOW_API
from labtrack.columns import STEP, VALUE, pack
from labtrack.entities import encode_double as _value
from labtrack.errors import LabtrackError, TransientError

# runs/log-batch limits (reference §5).  One source of truth for the client.
MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ENTRIES = 1000
MAX_BODY_BYTES = 900_000  # the server accepts 1 MB; leave room for JSON overhead
# labtrack's runs/log-series: metrics column by column, many more per request.
SERIES_POINTS = 50_000  # the server takes 100,000; smaller requests keep both sides busy
SERIES_BODY_BYTES = 8_000_000

METRIC, PARAM, TAG = 0, 1, 2


class _Batch:
    """Writes for one run that fit in one request: ``runs/log-batch``, or labtrack's
    ``runs/log-series`` when ``series`` (metrics column by column, 50x as many)."""

    __slots__ = ("run_id", "series", "metrics", "params", "tags", "size", "param_keys", "max_metrics")

    def __init__(self, run_id: str, series: bool = False) -> None:
        self.run_id = run_id
        self.series = series
        self.metrics: list[tuple] = []
        self.params: list[dict[str, str]] = []
        self.tags: dict[str, str] = {}
        self.size = 0
        self.param_keys: set[str] = set()
        self.max_metrics = SERIES_POINTS if series else MAX_METRICS

    def __len__(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)

    def metrics_only(self) -> bool:
        return not self.params and not self.tags

    def add(self, item: tuple) -> bool:
        """Add ``item`` if it fits; False means "send what you have first"."""
        kind = item[0]
        if kind == METRIC:
            if self.series:
                # Points alone bound a series request (~40 bytes a point).
                if len(self.metrics) >= SERIES_POINTS:
                    return False
                self.metrics.append(item)
                return True
            if (len(self.metrics) >= MAX_METRICS or len(self) >= MAX_ENTRIES
                    or self.size + 120 > MAX_BODY_BYTES):
                return False
            self.metrics.append(item)
            self.size += len(item[2]) + 80
            return True
        total = len(self.params) + len(self.tags) + (0 if self.series else len(self.metrics))
        if total >= MAX_ENTRIES:
            return False
        key, value = item[2], item[3]
        cost = len(key) + len(value) + 32
        limit = SERIES_BODY_BYTES - 40 * SERIES_POINTS if self.series else MAX_BODY_BYTES
        if self.size + cost > limit and total:
            return False
        if kind == PARAM:
            # A key twice in one batch is refused as a whole by MLflow; send it next time
            # so that the server judges the second value against the first.
            if len(self.params) >= MAX_PARAMS or key in self.param_keys:
                return False
            self.param_keys.add(key)
            self.params.append({"key": key, "value": value})
        else:
            if key not in self.tags and len(self.tags) >= MAX_TAGS:
                return False
            self.tags.pop(key, None)  # the last value of a tag wins, as if sent in order
            self.tags[key] = value
        self.size += cost
        return True

    def message(self) -> dict[str, Any]:
        return {"run_id": self.run_id,
                "metrics": [{"key": m[2], "value": _value(m[3]), "timestamp": m[4],
                             "step": m[5]} for m in self.metrics],
                "params": self.params,
                "tags": [{"key": k, "value": v} for k, v in self.tags.items()]}

    def endpoint(self) -> tuple[str, str]:
        """(API prefix, endpoint) of this batch's request."""
        return (LABTRACK_API, "runs/log-series") if self.series else (MLFLOW_API, "runs/log-batch")

    def body(self) -> bytes:
        """The JSON body, written directly: several times faster than json.dumps on
        dicts, and the sender's encoding competes with the user's loop for the GIL."""
        dumps = json.dumps
        tags = [{"key": k, "value": v} for k, v in self.tags.items()]
        head = f'{{"run_id":{dumps(self.run_id)},"params":{dumps(self.params)},"tags":{dumps(tags)},'
        if self.series:
            parts = [f'{{"key":{dumps(key)},"steps":"{pack(STEP, steps)}","timestamps":"{pack(STEP, tss)}",'
                     f'"values":"{pack(VALUE, values)}"}}' for key, steps, tss, values in self._columns()]
            return f'{head}"series":[{",".join(parts)}]}}'.encode()
        keys: dict[str, str] = {}
        parts = []
        for _, _, key, value, ts, step in self.metrics:
            k = keys.get(key)
            if k is None:
                k = keys[key] = dumps(key)
            v = repr(value) if value - value == 0.0 else dumps(_value(value))
            parts.append(f'{{"key":{k},"value":{v},"timestamp":{ts},"step":{step}}}')
        return f'{head}"metrics":[{",".join(parts)}]}}'.encode()

    def _columns(self) -> list[tuple[str, Any, Any, Any]]:
        """The metrics as (key, steps, timestamps, values), one per key, in logged order."""
        ms = self.metrics
        if not ms:
            return []
        keys = [m[2] for m in ms]  # a comprehension a column: faster than zip(*ms) of 50,000 arguments
        if keys.count(keys[0]) == len(keys):
            return [(keys[0], [m[5] for m in ms], [m[4] for m in ms], [m[3] for m in ms])]
        values, tss, steps = [m[3] for m in ms], [m[4] for m in ms], [m[5] for m in ms]
        by_key: dict[str, tuple[list, list, list]] = {}
        for key, value, ts, step in zip(keys, values, tss, steps):
            cols = by_key.get(key)
            if cols is None:
                cols = by_key[key] = ([], [], [])
            cols[0].append(step)
            cols[1].append(ts)
            cols[2].append(value)
        return [(key, *cols) for key, cols in by_key.items()]

    def items(self) -> list[tuple]:
        return ([(PARAM, self.run_id, p["key"], p["value"]) for p in self.params]
                + [(TAG, self.run_id, k, v) for k, v in self.tags.items()]
                + list(self.metrics))

    def halves(self) -> tuple[_Batch, _Batch]:
        items = self.items()
        mid = len(items) // 2
        first, second = _Batch(self.run_id, self.series), _Batch(self.run_id, self.series)
        for b, chunk in ((first, items[:mid]), (second, items[mid:])):
            for it in chunk:
                b.add(it)
        return first, second

    def as_log_batches(self) -> list[_Batch]:
        """The same writes as MLflow-sized ``runs/log-batch`` batches, in order."""
        out = [_Batch(self.run_id)]
        for it in self.items():
            if not out[-1].add(it):
                out.append(_Batch(self.run_id))
                out[-1].add(it)
        return out


class _Lanes:
    """Up to ``width`` batches of metrics alone in flight at once, each on its own thread (and so
    its own connection): the server decodes and checks the next request while it stores the
    one before, instead of idling for a reply to reach the client and the next request to
    come back.  Points may then land out of order, which changes nothing: the history is a
    set, and the latest value is MLflow's max by (step, timestamp, value), not the last to
    arrive.  Everything else (params, tags, calls, flushes) waits for the lanes to drain, so
    it keeps its place in the order.
    """

    def __init__(self, deliver: Any, width: int) -> None:
        self.width = width
        self._deliver = deliver
        self._free = threading.Semaphore(width)
        self._work: queue.SimpleQueue[tuple[_Batch, bytes]] = queue.SimpleQueue()
        self._threads = 0

    def submit(self, batch: _Batch, body: bytes) -> None:
        self._free.acquire()
        if self._threads < self.width:
            self._threads += 1
            threading.Thread(target=self._lane, name="labtrack-poster-lane", daemon=True).start()
        self._work.put((batch, body))

    def drain(self) -> None:
        """Wait until every batch submitted so far has been delivered (or rejected)."""
        for _ in range(self.width):
            self._free.acquire()
        for _ in range(self.width):
            self._free.release()

    def _lane(self) -> None:
        while True:
            batch, body = self._work.get()
            try:
                self._deliver(batch, body)
            finally:
                self._free.release()


class _Marker:
    """A flush request travelling through the queue."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Call:
    """Work queued in order with the writes and done on the poster thread (sending a finished trace)."""

    __slots__ = ("fn", "what")

    def __init__(self, fn: Any, what: str) -> None:
        self.fn, self.what = fn, what


class Sender:
    """Delivers queued writes to one server on two daemon threads.

    The packer drains the queue into batches and encodes them; the poster sends
    them one after the other, in order.  While a request is with the server (the
    poster waits on its socket, without the GIL) the packer readies the next one.
    """

    def __init__(self, transport: Any, max_queue: int = 2_000_000) -> None:
        self._transport = transport
        self._max_queue = max_queue
        self._q: deque = deque()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._idle = True
        self._thread: threading.Thread | None = None
        self._ready: queue.Queue[tuple[_Batch | _Marker, bytes]] = queue.Queue(maxsize=1)
        self._errors: list[LabtrackError] = []
        self._series = True  # labtrack's runs/log-series until the server says it has none
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) and s._after_fork())

    def _after_fork(self) -> None:
        # The child inherits the parent's queue but not its thread: start afresh.
        self._q.clear()
        self._errors = []
        self._thread = None
        self._ready = queue.Queue(maxsize=1)
        self._idle = True
        self._wake = threading.Event()
        self._room = threading.Condition()

    # -- producer side ---------------------------------------------------------------
    def put(self, item: tuple) -> None:
        """Queue one write; returns at once unless the queue is full (back-pressure)."""
        q = self._q
        if len(q) >= self._max_queue:
            self._wait_for_room()
        q.append(item)
        if self._idle:
            if self._thread is None:
                self._start()
            self._wake.set()

    def put_param(self, run_id: str, key: str, value: str) -> None:
        self.put((PARAM, run_id, key, value))

    def put_tag(self, run_id: str, key: str, value: str) -> None:
        self.put((TAG, run_id, key, value))

    def put_call(self, api: str, endpoint: str, body: bytes, what: str) -> None:
        """Queue one POST of ``body`` (JSON) to ``endpoint``, delivered in order with the writes."""
        self.put_task(lambda transport: transport.call("POST", endpoint, raw_body=body, api=api), what)

    def put_task(self, fn: Any, what: str) -> None:
        """Queue ``fn(transport)``, run on the poster thread in order with the writes; its
        LabtrackError is raised at the next ``flush()``, like a rejected write."""
        self.put(_Call(fn, what))  # type: ignore[arg-type]

    def pending(self) -> int:
        return len(self._q)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is delivered; raise the first rejection."""
        self.wait(timeout)
        self.raise_errors()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is delivered; rejections stay pending."""
        # Also when the queue looks empty: the thread may be delivering what it took.
        if self._q or self._thread is not None:
            marker = _Marker()
            self.put(marker)  # type: ignore[arg-type]
            if not marker.done.wait(timeout):
                raise TransientError(f"flush timed out with {len(self._q)} writes queued")

    def raise_errors(self) -> None:
        if not self._errors:
            return
        errors, self._errors = self._errors, []
        first = errors[0]
        if len(errors) > 1:
            first.message += f" (and {len(errors) - 1} more rejected writes)"
            first.args = (first.message,)
        raise first

    def _wait_for_room(self) -> None:
        with self._room:
            self._room.wait_for(lambda: len(self._q) < self._max_queue // 2, timeout=60)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="labtrack-sender", daemon=True)
        self._thread.start()
        threading.Thread(target=self._post, args=(self._ready,), name="labtrack-poster", daemon=True).start()

    # -- consumer side ---------------------------------------------------------------
    def _run(self) -> None:
        """The packer: queued writes -> encoded batches (and flush markers), in order."""
        q, ready = self._q, self._ready
        while True:
            if not q:
                self._idle = True
                self._wake.clear()
                if not q:
                    self._wake.wait(1.0)
                self._idle = False
                continue
            batch: _Batch | None = None
            while q:
                item = q[0]
                if type(item) is _Marker or type(item) is _Call:
                    if batch is not None:
                        break
                    q.popleft()
                    ready.put((item, b""))
                    continue
                if batch is None:
                    batch = _Batch(item[1], self._series)
                elif item[1] != batch.run_id:
                    break
                if not batch.add(item):
                    break
                q.popleft()
            if batch is not None and len(batch):
                try:
                    body = batch.body()
                except Exception as exc:  # a bug must not kill the thread and hang flush()
                    self._errors.append(LabtrackError(f"sender failed: {exc!r}"))
                else:
                    ready.put((batch, body))
            if len(q) < self._max_queue // 2:
                with self._room:
                    self._room.notify_all()

    def _post(self, ready: queue.Queue[tuple[_Batch | _Marker, bytes]]) -> None:
        """The poster: sends what the packer readied, in order; ``runs/log-series`` batches of
        metrics alone go through ``_Lanes``, two at a time where the transport allows it (HTTP,
        not the spool)."""
        lanes = _Lanes(self._deliver, max(1, getattr(self._transport, "max_in_flight", 1)))
        while True:
            item, body = ready.get()
            # labtrack's log-series only: an MLflow server on SQLite gains nothing from a
            # second writer but its lock waits.
            if lanes.width > 1 and type(item) is _Batch and item.series and self._series and item.metrics_only():
                lanes.submit(item, body)
                continue
            lanes.drain()
            if type(item) is _Marker:
                item.done.set()
            elif type(item) is _Call:
                self._send_call(item)
            else:
                self._deliver(item, body)  # type: ignore[arg-type]

    def _send_call(self, call: _Call) -> None:
        try:
            call.fn(self._transport)
        except LabtrackError as exc:
            exc.message += f" ({call.what} not delivered)"
            exc.args = (exc.message,)
            self._errors.append(exc)
        except Exception as exc:  # a bug must not kill the thread and hang flush()
            self._errors.append(LabtrackError(f"sender failed: {exc!r}"))

    def _deliver(self, batch: _Batch, body: bytes | None = None) -> None:
        if batch.series and not self._series:  # packed before the server turned out to be MLflow's
            for part in batch.as_log_batches():
                self._deliver(part)
            return
        api, endpoint = batch.endpoint()
        try:
            self._transport.call("POST", endpoint, raw_body=body or batch.body(), api=api)
        except TransientError as exc:
            exc.message += f" ({len(batch)} writes for run {batch.run_id} not delivered)"
            exc.args = (exc.message,)
            self._errors.append(exc)
        except LabtrackError as exc:
            if batch.series and exc.error_code == "ENDPOINT_NOT_FOUND":
                # Not a labtrack server (MLflow's, or an older labtrack): MLflow's
                # log-batch from now on.
                self._series = False
                for part in batch.as_log_batches():
                    self._deliver(part)
                return
            if len(batch) == 1:
                self._errors.append(exc)
                return
            # Isolate the rejected write(s); re-sending good ones is harmless because
            # the server's writes are idempotent.
            for half in batch.halves():
                if len(half):
                    self._deliver(half)
        except Exception as exc:  # a bug must not kill the thread and hang flush()
            self._errors.append(LabtrackError(f"sender failed: {exc!r}"))


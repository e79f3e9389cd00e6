"""Non-blocking logging: batching, order, limits, and rejected writes surfacing at flush."""

from __future__ import annotations

import math
import sys
import threading
import time
import uuid

import pytest

import labtrack as lt
from labtrack.client import fluent
from labtrack.client.sender import MAX_METRICS, MAX_PARAMS, MAX_TAGS, METRIC, SERIES_POINTS, TAG, Sender, _Batch
from labtrack.entities import Metric
from labtrack.errors import InvalidParameterValue, LabtrackError


def test_ten_thousand_points_arrive_in_order(server) -> None:
    n = 12_000
    with lt.start_run() as run:
        for i in range(n):
            lt.log_metric("loss", 1.0 / (i + 1), step=i)
            if i % 3000 == 0:
                lt.log_metric("checkpoint", float(i), step=i)
        lt.flush()
        history = lt.get_metric_history(run.info.run_id, "loss")
    assert len(history) == n
    assert [m.step for m in history] == list(range(n))
    assert [m.value for m in history] == [1.0 / (i + 1) for i in range(n)]
    timestamps = [m.timestamp for m in history]
    assert timestamps == sorted(timestamps)
    assert [m.step for m in lt.get_metric_history(run.info.run_id, "checkpoint")] == [
        0, 3000, 6000, 9000]
    assert lt.get_run(run.info.run_id).data.metrics["loss"] == 1.0 / n


def test_changed_param_is_a_typed_error_at_flush(server) -> None:
    with lt.start_run() as run:
        lt.log_param("lr", 0.1)
        for i in range(500):
            lt.log_metric("m", float(i), step=i)
        lt.log_param("lr", 0.2)  # returns at once; the server refuses it later
        lt.log_metric("after", 1.0)
        lt.set_tag("still", "here")
        with pytest.raises(InvalidParameterValue) as info:
            lt.flush()
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
        lt.flush()  # reported once, not again
    got = lt.get_run(run.info.run_id)
    # Every good write around the rejected one landed.
    assert got.data.params == {"lr": "0.1"}
    assert got.data.metrics == {"m": 499.0, "after": 1.0}
    assert got.data.tags["still"] == "here"
    assert len(lt.get_metric_history(run.info.run_id, "m")) == 500


def test_rejected_write_raises_at_end_run_and_the_run_still_ends(server) -> None:
    run = lt.start_run()
    lt.log_param("p", "a")
    lt.log_param("p", "b")
    with pytest.raises(InvalidParameterValue):
        lt.end_run()
    assert lt.active_run() is None
    assert lt.get_run(run.info.run_id).info.status == "FINISHED"


def test_bad_metric_key_is_rejected_at_flush(server) -> None:
    with lt.start_run() as run:
        lt.log_metric("../escape", 1.0)
        lt.log_metric("fine", 2.0)
        with pytest.raises(LabtrackError):
            lt.flush()
    assert lt.get_run(run.info.run_id).data.metrics == {"fine": 2.0}


@pytest.mark.parametrize("synchronous", [False, True])
def test_log_batch_over_the_limits_is_split(server, synchronous: bool) -> None:
    client = lt.Client(server.uri)
    run = client.create_run(client.create_experiment(f"split-{uuid.uuid4().hex}"))
    rid = run.info.run_id
    params = {f"p{i:03d}": str(i) for i in range(3 * MAX_PARAMS + 7)}
    tags = {f"t{i:03d}": "x" * 7000 for i in range(2 * MAX_TAGS + 3)}  # also over 1 MB
    metrics = [Metric("m", float(i), 1000 + i, i) for i in range(2 * MAX_METRICS + 11)]
    client.log_batch(rid, metrics=metrics, params=params, tags=tags, synchronous=synchronous)
    client.set_terminated(rid)
    got = client.get_run(rid)
    assert got.data.params == params
    assert {k: v for k, v in got.data.tags.items() if k.startswith("t")} == tags
    assert len(client.get_metric_history(rid, "m")) == len(metrics)
    assert got.info.status == "FINISHED"


def test_tag_overwrites_keep_their_order(server) -> None:
    with lt.start_run() as run:
        for i in range(250):
            lt.set_tag("phase", str(i))
            lt.log_metric("x", float(i), step=i)
    assert lt.get_run(run.info.run_id).data.tags["phase"] == "249"


def test_batches_respect_limits() -> None:
    batch = _Batch("r")
    added = 0
    while batch.add((0, "r", "k", 1.0, 0, added)):
        added += 1
    assert added == MAX_METRICS
    batch = _Batch("r")
    assert batch.add((1, "r", "a", "1"))
    assert not batch.add((1, "r", "a", "2"))  # one key twice goes to the next batch
    for i in range(MAX_TAGS):
        assert batch.add((2, "r", f"t{i}", "v"))
    assert batch.add((2, "r", "t0", "again"))  # overwriting an existing tag still fits
    assert not batch.add((2, "r", "new", "v"))
    assert batch.message()["tags"][-1] == {"key": "t0", "value": "again"}


def test_reads_see_queued_writes_and_leave_rejections_to_flush(server) -> None:
    with lt.start_run() as run:
        lt.log_param("k", "1")
        lt.log_param("k", "2")
        lt.log_metric("seen", 7.0)
        got = lt.get_run(run.info.run_id)  # waits for delivery, raises nothing
        assert got.data.metrics == {"seen": 7.0} and got.data.params == {"k": "1"}
        with pytest.raises(InvalidParameterValue):
            lt.flush()


class _Recording:
    """A transport that passes calls on and notes which endpoint each write used."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, endpoint: str, *args: object, **kw: object) -> object:
        self.calls.append((str(kw.get("api", "/api/2.0/mlflow/")), endpoint))
        return self.inner.call(method, endpoint, *args, **kw)  # type: ignore[attr-defined]


def test_points_go_as_series_to_labtrack_and_as_log_batch_to_mlflow(server) -> None:
    n = SERIES_POINTS + 1234  # more than one series request
    with lt.start_run() as run:
        sender = fluent._client().sender
        recording = _Recording(sender._transport)
        sender._transport = recording
        lt.log_param("p", "1")
        for i in range(n):
            lt.log_metric("a" if i % 2 else "b", i * 0.5, step=i)
        lt.log_metric("special", math.nan, step=0)
        lt.log_metric("special", -math.inf, step=1)
        lt.flush()
        history = lt.get_metric_history(run.info.run_id, "a")
    assert [m.step for m in history] == list(range(1, n, 2))
    assert [m.value for m in history] == [i * 0.5 for i in range(1, n, 2)]
    special = lt.get_metric_history(run.info.run_id, "special")
    assert math.isnan(special[0].value)
    # MLflow's SQL store clamps infinities to the largest double; labtrack keeps them.
    assert special[1].value == (-math.inf if server.kind == "labtrack" else -sys.float_info.max)
    assert lt.get_run(run.info.run_id).data.params == {"p": "1"}
    writes = {c for c in recording.calls if c[1] in ("runs/log-series", "runs/log-batch")}
    if server.kind == "labtrack":
        assert writes == {("/api/2.0/labtrack/", "runs/log-series")}
    else:  # MLflow has no log-series: one refused try, then MLflow's log-batch of 1,000
        assert recording.calls[0] == ("/api/2.0/labtrack/", "runs/log-series")
        assert writes == {("/api/2.0/labtrack/", "runs/log-series"), ("/api/2.0/mlflow/", "runs/log-batch")}
        assert sum(c[1] == "runs/log-series" for c in recording.calls) == 1


def test_series_batches_respect_limits() -> None:
    batch = _Batch("r", series=True)
    added = 0
    while batch.add((0, "r", "k", 1.0, 0, added)):
        added += 1
    assert added == SERIES_POINTS
    assert batch.add((1, "r", "p", "v")) and batch.add((2, "r", "t", "v"))  # params and tags still fit
    parts = batch.as_log_batches()
    assert [len(p.metrics) for p in parts] == [MAX_METRICS - 2] + [MAX_METRICS] * 49 + [2]
    assert parts[0].params == [{"key": "p", "value": "v"}] and parts[0].tags == {"t": "v"}


class _Overlapping:
    """A transport that passes calls on and (``hold``) holds the first log-series request until a
    second one is in flight beside it (or 20 s have passed): with one at a time it never is."""

    max_in_flight = 2

    def __init__(self, inner: object, hold: bool) -> None:
        self.inner = inner
        self.hold = hold
        self.both = threading.Barrier(2, timeout=20)
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.order: list[str] = []

    def call(self, method: str, endpoint: str, *args: object, **kw: object) -> object:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.order.append(endpoint)
            first = self.hold and self.order.count(endpoint) <= 2 and endpoint == "runs/log-series"
        try:
            if first:
                try:
                    self.both.wait()
                except threading.BrokenBarrierError:
                    pass
            return self.inner.call(method, endpoint, *args, **kw)  # type: ignore[attr-defined]
        finally:
            with self.lock:
                self.now -= 1


def test_two_batches_of_points_are_in_flight_at_once_and_tags_keep_their_place(server) -> None:
    # While the server stores one request the next is already there: on labtrack its writer
    # never idles waiting for a reply to travel back and the next request to come.
    n = 3 * SERIES_POINTS
    with lt.start_run() as run:
        lt.flush()
        run_id = run.info.run_id
        # Two at a time on labtrack's log-series; MLflow's log-batch one at a time.
        wire = _Overlapping(fluent._client().sender._transport, hold=server.kind == "labtrack")
        sender = Sender(wire)
        ts = int(time.time() * 1000)
        sender.put((TAG, run_id, "phase", "before"))
        for i in range(n):
            sender.put((METRIC, run_id, "loss", 1.0 / (i + 1), ts, i))
        sender.put((TAG, run_id, "phase", "after"))
        sender.put((METRIC, run_id, "loss", 0.0, ts, n))
        sender.flush(timeout=120)
        if server.kind == "labtrack":
            assert wire.peak == 2, wire.order
        history = lt.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == list(range(n + 1))
        got = lt.get_run(run_id).data
        assert got.tags["phase"] == "after"
        # MLflow's latest value: the highest step, whichever request arrived last.
        assert got.metrics["loss"] == 0.0

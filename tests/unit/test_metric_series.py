"""Metric series, the bulk form of log-batch: the same stored points, latest values and
chart summaries as the same points logged as ``Metric`` objects (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest

from labtrack.columns import STEP, VALUE, Float64Column, Int64Column, column, last, pack
from labtrack.entities import Metric, MetricSeries
from labtrack.errors import InvalidParameterValue
from labtrack.store.metrics import BLOCK, _best
from labtrack.store.tracking import TrackingStore


def _as_metrics(series: list[MetricSeries]) -> list[Metric]:
    return [Metric(s.key, v, ts, step) for s in series for step, ts, v in zip(s.steps, s.timestamps, s.values)]


def _history(store: TrackingStore, run_id: str, key: str) -> list[tuple[int, int, str]]:
    points, _ = store.get_metric_history(run_id, key, max_results=25_000)
    return [(m.step, m.timestamp, repr(m.value)) for m in points]


def _observed(store: TrackingStore, run_id: str, keys: list[str]) -> dict[str, object]:
    run = store.get_run(run_id)
    return {
        "latest": {k: repr(v) for k, v in run.data.metrics.items()},
        "history": {k: _history(store, run_id, k) for k in keys},
        "charts": {k: store.downsampled_history(run_id, k, 64) for k in keys},
    }


def _random_series(rng: random.Random, key: str, n: int, *, sorted_steps: bool, specials: bool) -> MetricSeries:
    steps = list(range(n)) if sorted_steps else [rng.randrange(n) for _ in range(n)]
    values = [rng.uniform(-5, 5) for _ in range(n)]
    if specials:
        for i in rng.sample(range(n), min(n, 7)):
            values[i] = rng.choice([math.nan, math.inf, -math.inf])
    return MetricSeries(key, steps, [1_000 + rng.randrange(50) for _ in range(n)], values)


@pytest.mark.parametrize("sorted_steps", [True, False])
@pytest.mark.parametrize("specials", [False, True])
def test_series_store_what_the_same_metrics_store(store: TrackingStore, sorted_steps: bool,
                                                  specials: bool) -> None:
    rng = random.Random(f"{sorted_steps}{specials}")
    # Sizes around the block insert's edges: below, at, just over and many blocks.
    series = [_random_series(rng, key, n, sorted_steps=sorted_steps, specials=specials)
              for key, n in (("a", BLOCK - 1), ("b", BLOCK), ("c", BLOCK + 1), ("d", 5 * BLOCK + 17))]
    by_series = store.create_run("0").info.run_id
    by_metrics = store.create_run("0").info.run_id
    store.log_batch(by_series, series=series)
    points = _as_metrics(series)
    for i in range(0, len(points), 1000):
        store.log_batch(by_metrics, metrics=points[i:i + 1000])
    keys = [s.key for s in series]
    assert _observed(store, by_series, keys) == _observed(store, by_metrics, keys)


def test_repeating_a_series_changes_nothing(store: TrackingStore) -> None:
    run_id = store.create_run("0").info.run_id
    s = MetricSeries("loss", list(range(3 * BLOCK)), [5] * (3 * BLOCK), [1.0 / (i + 1) for i in range(3 * BLOCK)])
    store.log_batch(run_id, series=[s])
    before = _observed(store, run_id, ["loss"])
    store.log_batch(run_id, series=[s])  # a retried request
    assert _observed(store, run_id, ["loss"]) == before
    assert len(before["history"]["loss"]) == 3 * BLOCK  # type: ignore[index]


def test_a_key_named_twice_is_one_series(store: TrackingStore) -> None:
    run_id = store.create_run("0").info.run_id
    store.log_batch(run_id, series=[MetricSeries("m", [0, 1], [10, 11], [5.0, 1.0]),
                                    MetricSeries("m", [2], [12], [3.0])])
    assert store.get_run(run_id).data.metrics == {"m": 3.0}
    assert [v for _, _, v in _history(store, run_id, "m")] == ["5.0", "1.0", "3.0"]


def test_latest_value_merges_with_earlier_requests(store: TrackingStore) -> None:
    run_id = store.create_run("0").info.run_id
    store.log_batch(run_id, series=[MetricSeries("m", [10], [1], [7.0])])
    store.log_batch(run_id, series=[MetricSeries("m", [3, 4], [2, 3], [1.0, 2.0])])  # older steps
    assert store.get_run(run_id).data.metrics == {"m": 7.0}
    store.log_batch(run_id, series=[MetricSeries("m", [10], [1], [math.nan])])
    assert store.get_run(run_id).data.metrics == {"m": 7.0}  # NaN ranks below a number at a tie


@pytest.mark.parametrize("bad, message", [
    (MetricSeries("m", [0, 1], [1, 2], [1.0]), "same length"),
    (MetricSeries("m", [0, 1.5], [1, 2], [1.0, 2.0]), "steps[1]"),
    (MetricSeries("m", [0, 1], [1, -2], [1.0, 2.0]), "must not be negative"),
    (MetricSeries("m", [0, 2**63], [1, 2], [1.0, 2.0]), "int64"),
    (MetricSeries("m", [0, 1], [1, 2], [1.0, "1.0"]), "values[1]"),
    (MetricSeries("m", [0], [1], [None]), "values[0]"),
    (MetricSeries("bad key!", [0], [1], [1.0]), "Invalid metric name"),
    (MetricSeries("m", (0,), [1], [1.0]), "must be a list"),
    # Packed columns (runs/log-series as sent, spool records) skip the type scans, not the sign check.
    (MetricSeries("m", column(pack(STEP, [0, 1]), STEP), column(pack(STEP, [1, -2]), STEP),
                  column(pack(VALUE, [1.0, 2.0]), VALUE)), "timestamps[1] = -2 is out of range"),
])
def test_a_bad_point_refuses_the_whole_request(store: TrackingStore, bad: MetricSeries, message: str) -> None:
    run_id = store.create_run("0").info.run_id
    good = MetricSeries("good", list(range(BLOCK + 3)), [1] * (BLOCK + 3), [1.0] * (BLOCK + 3))
    with pytest.raises(InvalidParameterValue) as info:
        store.log_batch(run_id, series=[good, bad], params=[("p", "1")])
    assert message in info.value.message
    run = store.get_run(run_id)
    assert run.data.metrics == {} and run.data.params == {}


@pytest.mark.parametrize("sorted_steps", [True, False])
def test_latest_min_and_max_are_those_of_every_point(sorted_steps: bool) -> None:
    """The latest point is the largest (step, timestamp, value); min and max come with the
    smallest step that holds them, ties and repeated steps included."""
    rng = random.Random(f"best{sorted_steps}")
    for _ in range(500):
        n = rng.randrange(1, 30)
        steps = [rng.randrange(6) for _ in range(n)]
        if sorted_steps:
            steps.sort()
        s = MetricSeries("m", steps, [rng.randrange(3) for _ in range(n)],
                         [rng.choice([0.5, 1.0, -2.0, 3.0, math.inf, -math.inf]) for _ in range(n)])
        lo, hi = min(s.values), max(s.values)
        first = {v: min(st for st, x in zip(s.steps, s.values) if x == v) for v in (lo, hi)}
        step, ts, value = max(zip(s.steps, s.timestamps, s.values))
        assert _best(s) == ((step, ts, 1, value), (lo, first[lo]), (hi, first[hi])), s


@pytest.mark.parametrize("typecode", [STEP, VALUE])
def test_a_packed_columns_last_item_is_decoded_alone(typecode: str) -> None:
    """``columns.last`` (the spool preview's) gives what unpacking the whole column ends with,
    at every length around base64's 3-byte groups, and refuses text that is no whole items."""
    rng = random.Random(typecode)
    for n in range(0, 20):
        items = ([rng.randrange(-2**63, 2**63) for _ in range(n)] if typecode == STEP
                 else [rng.uniform(-1e300, 1e300) for _ in range(n)])
        got = last(pack(typecode, items), typecode)
        assert got == items[-1:] and type(got) is (Int64Column if typecode == STEP else Float64Column)
    assert last([1, 2, 3], typecode) == [3]
    for bad in ("AAAA", "AAAAAAA=", "!!!!AAAAAAAAAAA=", "AAAAAAAAAAA"):
        with pytest.raises(ValueError):
            last(bad, typecode)


def test_point_limit_counts_every_series(store: TrackingStore) -> None:
    run_id = store.create_run("0").info.run_id
    half = 50_000
    series = [MetricSeries(k, list(range(half + extra)), [1] * (half + extra), [0.0] * (half + extra))
              for k, extra in (("a", 0), ("b", 1))]
    with pytest.raises(InvalidParameterValue, match="at most 100000 points"):
        store.log_batch(run_id, series=series)
    series[1] = MetricSeries("b", list(range(half)), [1] * half, [0.0] * half)
    store.log_batch(run_id, series=series)
    assert store.downsampled_history(run_id, "b", 10)[1] == half  # (points, how many in all)


def test_strings_for_special_values_and_ints_are_taken(store: TrackingStore) -> None:
    run_id = store.create_run("0").info.run_id
    store.log_batch(run_id, series=[MetricSeries("m", [0, 1, 2, 3], [1, 1, 1, 1],
                                                 ["NaN", "Infinity", "-Infinity", 4])])  # type: ignore[list-item]
    assert [v for _, _, v in _history(store, run_id, "m")] == ["nan", "inf", "-inf", "4.0"]


def test_two_stores_creating_the_same_series_at_once_make_one_each(backend_uri: str) -> None:
    """Two writers (two stores on one database, as ``--workers`` processes are) log the same
    new keys of one run in opposite orders at once: no error, no deadlock, one series a key."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from labtrack.store import schema

    stores = [TrackingStore(backend_uri), TrackingStore(backend_uri)]
    try:
        run_id = stores[0].create_run("0").info.run_id
        keys = [f"k{i:02d}" for i in range(40)]

        def write(i: int) -> None:
            order = keys if i % 2 else keys[::-1]
            for a in range(0, len(order), 8):
                stores[i % 2].log_batch(run_id, metrics=[Metric(k, float(i), 1, i) for k in order[a:a + 8]])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(8)))
        ser = schema.metric_series
        count = stores[0].read(lambda c: c.execute(select(func.count()).select_from(ser).where(
            ser.c.run_uuid == run_id)).scalar_one())
        assert count == len(keys)
        for k in keys:
            assert sorted(m.step for m in stores[1].get_metric_history(run_id, k)[0]) == list(range(8))
    finally:
        for st in stores:
            st.close()

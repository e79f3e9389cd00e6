"""search_runs' compiled-query cache: a kept query must answer every later call with
that call's own experiments, page and limit, and never hide a bad filter (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from labtrack.entities import Metric
from labtrack.errors import InvalidParameterValue
from labtrack.store import run_query
from labtrack.store.tracking import TrackingStore


def _names(store: TrackingStore, exp_ids: list[str], filter_string: str, **kw: object) -> list[str]:
    runs, _ = store.search_runs(exp_ids, filter_string, **kw)  # type: ignore[arg-type]
    return [r.info.run_name for r in runs]


def test_a_kept_query_answers_with_each_calls_own_values(store: TrackingStore) -> None:
    a = store.create_experiment("a")
    b = store.create_experiment("b")
    for exp, prefix in ((a, "a"), (b, "b")):
        for i in range(6):
            run = store.create_run(exp, start_time=1000 + i, run_name=f"{prefix}{i}").info.run_id
            store.log_batch(run, metrics=[Metric("m", float(i), 1, 0)], params=[("p", "x" if i % 2 else "y")])
    filt = "metrics.m >= 2 and params.p = 'x'"
    run_query._compiled.cache_clear()
    assert _names(store, [a], filt) == ["a5", "a3"]
    assert _names(store, [b], filt) == ["b5", "b3"]  # the same query, kept: other experiment
    assert sorted(_names(store, [a, b], filt)) == ["a3", "a5", "b3", "b5"]  # two experiments: its own entry
    assert _names(store, [a], filt, max_results=1) == ["a5"]
    runs, token = store.search_runs([a], filt, max_results=1)
    assert token is not None
    assert [r.info.run_name for r in store.search_runs([a], filt, max_results=1, page_token=token)[0]] == ["a3"]
    assert _names(store, [a], filt, order_by=["metrics.m ASC"]) == ["a3", "a5"]
    assert _names(store, [a], "metrics.m >= 4") == ["a5", "a4"]  # another filter, another entry
    info = run_query._compiled.cache_info()
    assert info.hits >= 4 and info.currsize == 4


def test_bad_input_is_refused_on_every_call(store: TrackingStore) -> None:
    exp = store.create_experiment("bad")
    for _ in range(2):  # the second call would be a cache hit if the first had been kept
        with pytest.raises(InvalidParameterValue):
            store.search_runs([exp], "metrics.m >>> 1")
        with pytest.raises(InvalidParameterValue):
            store.search_runs([exp], "", order_by=["nope.x DESC"])
        with pytest.raises(InvalidParameterValue):
            store.search_runs([exp], "", view_type="SOMETIMES")
    with pytest.raises(InvalidParameterValue):
        store.search_runs([], "metrics.m >>> 1")  # no experiments: the filter is still checked


def test_no_experiments_find_nothing(store: TrackingStore) -> None:
    exp = store.create_experiment("some")
    store.create_run(exp, run_name="r")
    assert store.search_runs([], "") == ([], None)
    assert store.search_runs([], "attributes.run_id IN ('a', 'b')") == ([], None)

"""A search sorted by a metric in a large experiment walks the metric's index (run_query._metric_walk):
every page must be the page the general query gives, on SQLite and PostgreSQL.

The general query evaluates every run and sorts them; the walk reads runs with a number
in value order, then those whose value is NaN, then those without the metric.  Both are
run here on the same data (ties, NaN, missing values, deleted runs, a second experiment)
for each order, filter, page size and offset.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from labtrack.entities import Metric
from labtrack.store import run_query
from labtrack.store.tracking import TrackingStore
from tests.servers import PostgresDatabases


@pytest.fixture(scope="module")
def data(backend_uri_module: str) -> Iterator[tuple[TrackingStore, str, str]]:
    store = TrackingStore(backend_uri_module)
    a, b = store.create_experiment("walk-a"), store.create_experiment("walk-b")
    rng = random.Random(7)
    for exp, n in ((a, 60), (b, 20)):
        for i in range(n):
            run = store.create_run(exp, start_time=1000 + i // 3, run_name=f"{exp}-{i}").info.run_id  # tied starts
            metrics = []
            if i % 7 != 0:  # some runs lack m
                metrics.append(Metric("m", float("nan") if i % 11 == 0 else float(rng.randrange(5)), 1, 0))
            metrics.append(Metric("n", rng.random(), 1, 0))
            store.log_batch(run, metrics=metrics, params=[("p", rng.choice("xy"))])
            if i % 13 == 5:
                store.delete_run(run)
    yield store, a, b
    store.close()


@pytest.fixture(scope="module")
def backend_uri_module(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
                       pg_databases: PostgresDatabases | None) -> Iterator[str]:
    """backend_uri for a whole module: the data is logged once per backend."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('walk') / 'mlruns.db'}"
        return
    if pg_databases is None:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
    url = pg_databases.create()
    yield url
    pg_databases.drop(url)


def _ids(store: TrackingStore, exps: list[str], filt: str, order: list[str], view: str, size: int,
         walk: bool) -> list[str]:
    """Every page's run ids in order, following the page tokens."""
    run_query.METRIC_WALK_MIN_RUNS = 0 if walk else 10**9
    try:
        out, token = [], None
        while True:
            runs, token = store.search_runs(exps, filt, view_type=view, max_results=size, order_by=order,
                                            page_token=token)
            out += [r.info.run_id for r in runs]
            if token is None:
                return out
    finally:
        run_query.METRIC_WALK_MIN_RUNS = 2000


@pytest.mark.parametrize("backend_uri_module", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("order", [["metrics.m DESC"], ["metrics.m ASC"], ["metrics.m"],
                                   ["metrics.m DESC", "params.p ASC"], ["metrics.m ASC", "attributes.run_name DESC"],
                                   ["metrics.n DESC"]])
@pytest.mark.parametrize("filt", ["", "params.p = 'x'", "metrics.n < 0.5"])
def test_the_walk_gives_the_general_querys_pages(data: tuple[TrackingStore, str, str], order: list[str],
                                                 filt: str) -> None:
    store, a, b = data
    for exps, view in (([a], "ACTIVE_ONLY"), ([a, b], "ALL"), ([b], "DELETED_ONLY")):
        expected = _ids(store, exps, filt, order, view, 1000, walk=False)
        assert expected, (exps, view)
        for size in (1, 7, 1000):
            assert _ids(store, exps, filt, order, view, size, walk=True) == expected, (exps, view, size)


def test_the_walk_is_taken_only_for_large_experiments(data: tuple[TrackingStore, str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store, a, _ = data
    taken = []
    real = run_query._metric_walk
    monkeypatch.setattr(run_query, "_metric_walk", lambda *args: taken.append(1) or real(*args))
    store.search_runs([a], "", order_by=["metrics.m DESC"])
    assert not taken  # 60 runs: each run evaluated, as before
    monkeypatch.setattr(run_query, "METRIC_WALK_MIN_RUNS", 50)
    store.search_runs([a], "", order_by=["metrics.m DESC"])
    assert taken

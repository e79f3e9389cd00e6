"""Downsampled metric history keeps every bucket's extremes (real SQLite store)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from labtrack.entities import Metric
from labtrack.store.tracking import TrackingStore


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    st = TrackingStore(f"sqlite:///{tmp_path / 'd.db'}")
    yield st
    st.close()


def _log(store: TrackingStore, run_id: str, values: list[float]) -> None:
    for i in range(0, len(values), 1000):
        store.log_batch(run_id, metrics=[Metric("loss", v, 1000 + s, s)
                                         for s, v in enumerate(values[i:i + 1000], start=i)])


def test_spikes_survive_and_size_is_bounded(store: TrackingStore) -> None:
    run = store.create_run("0")
    values = [math.sin(i / 500) for i in range(20000)]
    values[12345] = 50.0   # a spike
    values[777] = -50.0    # a dip
    values[9000] = math.nan
    _log(store, run.info.run_id, values)
    points, total = store.downsampled_history(run.info.run_id, "loss", max_points=400)
    assert total == 20000
    assert len(points) <= 400
    steps = [p["step"] for p in points]
    assert steps == sorted(steps)
    by_step = {p["step"]: p["value"] for p in points}
    assert by_step[12345] == 50.0 and by_step[777] == -50.0
    assert 0 in by_step and 19999 in by_step or min(steps) < 100 and max(steps) > 19900


def test_window_is_exact_when_small(store: TrackingStore) -> None:
    run = store.create_run("0")
    _log(store, run.info.run_id, [float(i) for i in range(5000)])
    points, total = store.downsampled_history(run.info.run_id, "loss", max_points=400,
                                              min_step=100, max_step=299)
    assert total == 200
    assert [p["step"] for p in points] == list(range(100, 300))
    assert [p["value"] for p in points] == [float(i) for i in range(100, 300)]


def test_every_bucket_keeps_its_min_and_max(store: TrackingStore) -> None:
    from labtrack.store.downsample import LEVELS

    run = store.create_run("0")
    values = [float((i * 7919) % 1000) for i in range(10000)]
    _log(store, run.info.run_id, values)
    points, _ = store.downsampled_history(run.info.run_id, "loss", max_points=100)
    assert len(points) <= 100
    width = next(w for w in LEVELS if math.ceil(10000 / w) <= 50)
    kept: dict[int, set[float]] = {}
    for p in points:
        assert p["value"] == values[p["step"]]
        kept.setdefault(p["step"] // width, set()).add(p["value"])
    for b in range(math.ceil(10000 / width)):
        chunk = values[b * width:(b + 1) * width]
        assert {min(chunk), max(chunk)} <= kept[b]


def test_points_logged_without_steps_are_spread_by_order(store: TrackingStore) -> None:
    run = store.create_run("0")
    store.log_batch(run.info.run_id, metrics=[Metric("t", float(i % 50), 1000 + i, 0) for i in range(1000)])
    points, total = store.downsampled_history(run.info.run_id, "t", max_points=100)
    assert total == 1000 and 40 <= len(points) <= 100
    assert {p["value"] for p in points} >= {0.0, 49.0}


def test_long_windows_read_finer_levels_at_their_edges_and_stop_counting(store: TrackingStore) -> None:
    """A window of more than COUNT_CAP points is counted no further (counting 10,000,000 points
    took longer than drawing them), and the partial buckets at its edges still give their exact
    min and max, now from finer levels' buckets instead of every raw point there."""
    import random

    from labtrack.entities import MetricSeries
    from labtrack.store.downsample import COUNT_CAP
    from labtrack.store.metrics import insert_series

    run_id = store.create_run("0").info.run_id
    rng = random.Random(5)
    n = 3 * COUNT_CAP
    values = [rng.gauss(0, 1) for _ in range(n)]
    store.write(lambda conn: insert_series(conn, run_id, [MetricSeries("loss", list(range(n)), list(range(n)), values)]))
    points, total = store.downsampled_history(run_id, "loss", max_points=2000)
    assert total == COUNT_CAP + 1
    assert min(p["value"] for p in points) == min(values) and max(p["value"] for p in points) == max(values)
    for _ in range(30):
        a = rng.randrange(0, n - 10)
        b = min(n - 1, a + rng.choice([50, 3000, 40_000, 150_000]))
        values_in = values[a:b + 1]
        points, total = store.downsampled_history(run_id, "loss", max_points=400, min_step=a, max_step=b)
        assert total == min(b - a + 1, COUNT_CAP + 1)
        assert all(a <= p["step"] <= b for p in points)
        assert len(points) <= 400
        got = [p["value"] for p in points]
        assert min(got) == min(values_in) and max(got) == max(values_in), (a, b)


def test_a_window_edges_read_their_own_steps_not_the_whole_window(store: TrackingStore) -> None:
    """The raw points at a long window's edges are a few steps each; with the window's own step
    bounds beside theirs, SQLite ranged over the whole window to find them (0.2 s of CPU for a
    1,000,000-step window of a 10,000,000-point metric).  Counted in SQLite VM steps, so the
    check is about work done, not time: the whole answer costs less than twice its bounded count."""
    from sqlalchemy import func, select

    from labtrack.entities import MetricSeries
    from labtrack.store import schema as s
    from labtrack.store.downsample import COUNT_CAP, downsample
    from labtrack.store.metrics import insert_series

    run_id = store.create_run("0").info.run_id
    n = 3 * COUNT_CAP
    store.write(lambda conn: insert_series(conn, run_id, [MetricSeries("loss", list(range(n)), list(range(n)),
                                                                        [float(i % 977) for i in range(n)])]))
    a, b = 1_003, 1_003 + int(2.5 * COUNT_CAP)  # not on a bucket's edge at either end

    def vm_steps(conn, fn) -> int:  # type: ignore[no-untyped-def]
        ticks = [0]
        raw = conn.connection.driver_connection
        raw.set_progress_handler(lambda: ticks.__setitem__(0, ticks[0] + 1), 100)
        try:
            fn()
        finally:
            raw.set_progress_handler(None, 0)
        return ticks[0]

    def measure(conn):  # type: ignore[no-untyped-def]
        from labtrack.store.metric_series import find_series

        m = s.metrics
        cond = [m.c.series_id == find_series(conn, run_id, "loss"), m.c.step >= a, m.c.step <= b]
        count = vm_steps(conn, lambda: conn.execute(select(func.count()).select_from(
            select(m.c.step).where(*cond).limit(COUNT_CAP + 1).subquery())).scalar_one())
        points: list = []
        whole = vm_steps(conn, lambda: points.extend(downsample(conn, run_id, "loss", 2000, a, b)[0]))
        return count, whole, points

    count, whole, points = store.read(measure)
    assert points and points[0]["step"] == a and points[-1]["step"] == b
    assert whole < 2 * count, (whole, count)

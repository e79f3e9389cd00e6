"""Metric history pages: the order, paging and JSON that get-history answers with.

The store reads a page in the primary key's order when that gives the same rows
(no NaN on the page or just before it) and the server writes the JSON text
directly; both fast paths must give exactly what the plain query and
``Metric.to_json`` give.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator

import pytest

from labtrack.entities import Metric
from labtrack.server.api_tracking import _points_json
from labtrack.store.tracking import TrackingStore


def _expected(points: list[Metric]) -> list[tuple[int, int, bool, float]]:
    """labtrack's history order: step, timestamp, then numbers before NaN, then value."""
    seen = {(m.step, m.timestamp, math.isnan(m.value), 0.0 if math.isnan(m.value) else m.value) for m in points}
    return sorted(seen, key=lambda p: (p[0], p[1], p[2], p[3]))


def _key(m: Metric) -> tuple[int, int, bool, float]:
    nan = math.isnan(m.value)
    return (m.step, m.timestamp, nan, 0.0 if nan else m.value)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_page_is_a_slice_of_the_whole_order(store: TrackingStore, seed: int) -> None:
    rng = random.Random(seed)
    run_id = store.create_run("0").info.run_id
    # Few distinct (step, timestamp) pairs, many NaNs: ties across page edges are common.
    points = [Metric("m", math.nan if rng.random() < 0.3 else rng.choice([-1.0, 0.0, 0.5, 2.0, math.inf]),
                     rng.randint(0, 2), rng.randint(0, 4)) for _ in range(40)]
    points += [Metric("m", float(v), 5, 10 + v) for v in range(30)]  # a long NaN-free tail
    store.log_batch(run_id, metrics=points)
    whole = _expected(points)
    for size in range(1, len(whole) + 2):
        got: list[tuple[int, int, bool, float]] = []
        token = None
        while True:
            page, token = store.get_metric_history(run_id, "m", size, token)
            assert [_key(m) for m in page] == whole[len(got):len(got) + len(page)]
            got += [_key(m) for m in page]
            if not token:
                break
        assert got == whole


def test_rendered_points_are_what_metric_to_json_gives(store: TrackingStore) -> None:
    run_id = store.create_run("0").info.run_id
    key = "loss/val:ü"
    values = [0.0, -2.5, 1e300, 5e-324, 0.1 + 0.2, math.inf, -math.inf, math.nan, 123456789.0]
    store.log_batch(run_id, metrics=[Metric(key, v, 1000 + i, i) for i, v in enumerate(values)]
                    + [Metric(key, 3.0, 7, 99, model_id="m-1", dataset_name='d "x"', dataset_digest="abc")])
    rows, _ = store.get_metric_history_rows(run_id, key)
    metrics, _ = store.get_metric_history(run_id, key)
    assert "[" + ",".join(_points_json(key, rows)) + "]" == json.dumps(
        [m.to_json() for m in metrics], separators=(",", ":"), allow_nan=False)
    for m in metrics:
        m.run_id = run_id
    assert "[" + ",".join(_points_json(key, rows, run_id)) + "]" == json.dumps(
        [m.to_json() for m in metrics], separators=(",", ":"), allow_nan=False)

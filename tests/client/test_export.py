"""Runs and histories as pandas tables: lt.search_runs(output_format="pandas"), lt.get_metric_histories."""

from __future__ import annotations

import math

import pytest

import labtrack as lt

pd = pytest.importorskip("pandas")


def test_histories_of_several_runs_as_one_long_table(server) -> None:  # type: ignore[no-untyped-def]
    with lt.start_run(run_name="a") as a:
        for step in range(3):
            lt.log_metric("loss", 1.0 / (step + 1), step=step)
        lt.log_metric("acc", math.nan, step=0)
    with lt.start_run(run_name="b") as b:
        lt.log_metric("loss", 5.0, step=7)
    frame = lt.get_metric_histories([b.info.run_id, a.info.run_id], ["loss", "acc"])
    assert list(frame.columns) == ["run_id", "key", "step", "timestamp", "value"]
    assert len(frame) == 5  # b has no acc: no rows for it
    rows = [(r.run_id, r.key, r.step) for r in frame.itertuples()]
    assert rows == sorted(rows)
    a_loss = frame[(frame.run_id == a.info.run_id) & (frame.key == "loss")]
    assert list(a_loss.step) == [0, 1, 2] and list(a_loss.value) == [1.0, 0.5, 1.0 / 3]
    assert math.isnan(frame[frame.key == "acc"].value.iloc[0])
    assert str(frame.timestamp.dt.tz) == "UTC"
    wide = frame[frame.key == "loss"].pivot(index="step", columns="run_id", values="value")
    assert wide.loc[7, b.info.run_id] == 5.0

    runs = lt.search_runs(output_format="pandas", order_by=["attributes.start_time ASC"])
    assert list(runs["tags.mlflow.runName"]) == ["a", "b"]
    assert list(runs["metrics.loss"]) == [1.0 / 3, 5.0]

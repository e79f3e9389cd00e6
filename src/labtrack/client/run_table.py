"""Runs as a pandas DataFrame, with the columns ``mlflow.search_runs`` gives (pandas is optional)."""

from __future__ import annotations

from typing import Any

from labtrack.entities import Run


BASE_COLUMNS = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
TIME_COLUMNS = ("start_time", "end_time")
_PREFIXES = ("metrics.", "params.", "tags.")


def run_record(run: Run) -> dict[str, Any]:
    """A run as ``mlflow.search_runs`` lays it out: the base columns (times in epoch ms),
    then ``metrics.<key>``, ``params.<key>`` and ``tags.<key>``.  Shared with the server's
    export (server/api_export.py), so a downloaded table has the DataFrame's columns."""
    info = run.info
    row: dict[str, Any] = {
        "run_id": info.run_id, "experiment_id": info.experiment_id, "status": info.status,
        "artifact_uri": info.artifact_uri, "start_time": info.start_time, "end_time": info.end_time,
    }
    row.update({f"metrics.{k}": m.value for k, m in run.metrics.items()})
    row.update({f"params.{k}": v for k, v in run.params.items()})
    row.update({f"tags.{k}": v for k, v in run.tags.items()})
    return row


def column_order(names: Any) -> list[str]:
    """The base columns, then the prefixed ones: metrics, params, tags, each by name."""
    prefixed = [c for c in set(names) if c not in BASE_COLUMNS]
    prefixed.sort(key=lambda c: (next((i for i, p in enumerate(_PREFIXES) if c.startswith(p)), 3), c))
    return BASE_COLUMNS + prefixed


def runs_to_frame(runs: list[Run]) -> Any:
    """One row per run: run_id, experiment_id, status, artifact_uri, start/end time
    (UTC datetimes), then ``metrics.*``, ``params.*`` and ``tags.*`` columns."""
    import pandas as pd

    rows = [run_record(run) for run in runs]
    for row in rows:
        for name in TIME_COLUMNS:
            row[name] = pd.to_datetime(row[name], unit="ms", utc=True) if row[name] is not None else pd.NaT
    frame = pd.DataFrame(rows, columns=None if rows else BASE_COLUMNS)
    return frame[column_order(frame.columns)]


def histories_to_frame(histories: dict[tuple[str, str], list[Any]]) -> Any:
    """``{(run_id, key): [Metric, ...]}`` as one long DataFrame (run_id, key, step, timestamp, value)."""
    import pandas as pd

    columns = ["run_id", "key", "step", "timestamp", "value"]
    rows = [(run_id, key, m.step, m.timestamp, m.value)
            for (run_id, key), points in histories.items() for m in points]
    frame = pd.DataFrame(rows, columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    return frame.sort_values(["run_id", "key", "step", "timestamp"], kind="stable").reset_index(drop=True)

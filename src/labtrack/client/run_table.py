"""Runs as a pandas DataFrame, with the columns ``mlflow.search_runs`` gives (pandas is optional)."""

from __future__ import annotations

from typing import Any

from labtrack.entities import Run


def runs_to_frame(runs: list[Run]) -> Any:
    """One row per run: run_id, experiment_id, status, artifact_uri, start/end time
    (UTC datetimes), then ``metrics.*``, ``params.*`` and ``tags.*`` columns."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for run in runs:
        info = run.info
        row: dict[str, Any] = {
            "run_id": info.run_id, "experiment_id": info.experiment_id, "status": info.status,
            "artifact_uri": info.artifact_uri,
            "start_time": pd.to_datetime(info.start_time, unit="ms", utc=True)
            if info.start_time is not None else pd.NaT,
            "end_time": pd.to_datetime(info.end_time, unit="ms", utc=True)
            if info.end_time is not None else pd.NaT,
        }
        row.update({f"metrics.{k}": m.value for k, m in run.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.params.items()})
        row.update({f"tags.{k}": v for k, v in run.tags.items()})
        rows.append(row)
    base = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    prefixed = sorted(c for c in frame.columns if c not in base)
    order = [p for p in ("metrics.", "params.", "tags.")]
    prefixed.sort(key=lambda c: (next(i for i, p in enumerate(order) if c.startswith(p)), c))
    return frame[base + prefixed]


def histories_to_frame(histories: dict[tuple[str, str], list[Any]]) -> Any:
    """``{(run_id, key): [Metric, ...]}`` as one long DataFrame (run_id, key, step, timestamp, value)."""
    import pandas as pd

    columns = ["run_id", "key", "step", "timestamp", "value"]
    rows = [(run_id, key, m.step, m.timestamp, m.value)
            for (run_id, key), points in histories.items() for m in points]
    frame = pd.DataFrame(rows, columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    return frame.sort_values(["run_id", "key", "step", "timestamp"], kind="stable").reset_index(drop=True)

"""Reading whole runs: one query per table for a whole page of runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from labtrack.entities import DatasetInput, Metric, Run, RunInfo
from labtrack.store import schema as s

_CHUNK = 900  # stays under every backend's bound-parameter limit


def chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def metric_value(value: float, is_nan: bool) -> float:
    return float("nan") if is_nan else value


def run_info(row: Any) -> RunInfo:
    return RunInfo(
        run_id=row.run_uuid, experiment_id=str(row.experiment_id), run_name=row.name,
        user_id=row.user_id, status=row.status, start_time=row.start_time, end_time=row.end_time,
        artifact_uri=row.artifact_uri, lifecycle_stage=row.lifecycle_stage,
    )


def load_runs(conn: Connection, run_ids: Sequence[str]) -> list[Run]:
    """Full runs in the order of ``run_ids`` (missing ids are skipped)."""
    runs: dict[str, Run] = {}
    for part in chunks(run_ids):
        for row in conn.execute(select(s.runs).where(s.runs.c.run_uuid.in_(part))):
            runs[row.run_uuid] = Run(info=run_info(row))
        _attach(conn, runs, part)
    return [runs[r] for r in run_ids if r in runs]


def _attach(conn: Connection, runs: dict[str, Run], part: Sequence[str]) -> None:
    for row in conn.execute(select(s.params).where(s.params.c.run_uuid.in_(part))):
        runs[row.run_uuid].params[row.key] = row.value
    for row in conn.execute(select(s.tags).where(s.tags.c.run_uuid.in_(part))):
        runs[row.run_uuid].tags[row.key] = row.value
    lm = s.latest_metrics
    for row in conn.execute(select(lm.c.run_uuid, lm.c.key, lm.c.value, lm.c.is_nan, lm.c.timestamp,
                                   lm.c.step).where(lm.c.run_uuid.in_(part))):
        runs[row.run_uuid].metrics[row.key] = Metric(
            key=row.key, value=metric_value(row.value, row.is_nan), timestamp=row.timestamp, step=row.step)
    _attach_inputs(conn, runs, part)
    for row in conn.execute(select(s.run_model_inputs).where(s.run_model_inputs.c.run_uuid.in_(part))):
        runs[row.run_uuid].model_inputs.append(row.model_id)
    for row in conn.execute(select(s.run_model_outputs).where(s.run_model_outputs.c.run_uuid.in_(part))):
        runs[row.run_uuid].model_outputs.append((row.model_id, row.step))


def _attach_inputs(conn: Connection, runs: dict[str, Run], part: Sequence[str]) -> None:
    ri, ds, it = s.run_inputs, s.datasets, s.input_tags
    rows = conn.execute(
        select(ri.c.run_uuid, ds).join(ds, ds.c.dataset_uuid == ri.c.dataset_uuid)
        .where(ri.c.run_uuid.in_(part)).order_by(ri.c.run_uuid, ds.c.name)
    ).all()
    if not rows:
        return
    input_tags: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for row in conn.execute(select(it).where(it.c.run_uuid.in_(part))):
        input_tags[(row.run_uuid, row.dataset_uuid)][row.key] = row.value
    for row in rows:
        runs[row.run_uuid].dataset_inputs.append(DatasetInput(
            name=row.name, digest=row.digest, source_type=row.source_type, source=row.source,
            schema=row.schema, profile=row.profile,
            tags=input_tags.get((row.run_uuid, row.dataset_uuid), {})))

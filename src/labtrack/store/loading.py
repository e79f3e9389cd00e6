"""Reading whole runs: one query per table for a whole page of runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select

from labtrack.entities import DatasetInput, Metric, Run, RunInfo
from labtrack.store import schema as s

_CHUNK = 900  # stays under every backend's bound-parameter limit


def _of_runs(*columns: Any) -> Any:
    """``SELECT columns WHERE run_uuid IN :ids``, built once (building costs more than running)."""
    table = columns[0].table
    return select(*columns).where(table.c.run_uuid.in_(bindparam("ids", expanding=True)))


_lm, _ri, _ds, _it = s.latest_metrics, s.run_inputs, s.datasets, s.input_tags
_RUNS = _of_runs(*s.runs.c)
_PARAMS = _of_runs(s.params.c.run_uuid, s.params.c.key, s.params.c.value)
_TAGS = _of_runs(s.tags.c.run_uuid, s.tags.c.key, s.tags.c.value)
_LATEST = _of_runs(_lm.c.run_uuid, _lm.c.key, _lm.c.value, _lm.c.is_nan, _lm.c.timestamp, _lm.c.step)
_MODEL_INPUTS = _of_runs(s.run_model_inputs.c.run_uuid, s.run_model_inputs.c.model_id)
_MODEL_OUTPUTS = _of_runs(s.run_model_outputs.c.run_uuid, s.run_model_outputs.c.model_id,
                          s.run_model_outputs.c.step)
_INPUTS = (select(_ri.c.run_uuid, _ds).join(_ds, _ds.c.dataset_uuid == _ri.c.dataset_uuid)
           .where(_ri.c.run_uuid.in_(bindparam("ids", expanding=True))).order_by(_ri.c.run_uuid, _ds.c.name))
_INPUT_TAGS = _of_runs(*_it.c)


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
        ids = {"ids": list(part)}
        for row in conn.execute(_RUNS, ids):
            runs[row.run_uuid] = Run(info=run_info(row))
        _attach(conn, runs, ids)
    return [runs[r] for r in run_ids if r in runs]


def _attach(conn: Connection, runs: dict[str, Run], ids: dict[str, Any]) -> None:
    for run_uuid, key, value in conn.execute(_PARAMS, ids):
        runs[run_uuid].params[key] = value
    for run_uuid, key, value in conn.execute(_TAGS, ids):
        runs[run_uuid].tags[key] = value
    for run_uuid, key, value, is_nan, timestamp, step in conn.execute(_LATEST, ids):
        runs[run_uuid].metrics[key] = Metric(
            key=key, value=metric_value(value, is_nan), timestamp=timestamp, step=step)
    _attach_inputs(conn, runs, ids)
    for run_uuid, model_id in conn.execute(_MODEL_INPUTS, ids):
        runs[run_uuid].model_inputs.append(model_id)
    for run_uuid, model_id, step in conn.execute(_MODEL_OUTPUTS, ids):
        runs[run_uuid].model_outputs.append((model_id, step))


def _attach_inputs(conn: Connection, runs: dict[str, Run], ids: dict[str, Any]) -> None:
    rows = conn.execute(_INPUTS, ids).all()
    if not rows:
        return
    input_tags: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for row in conn.execute(_INPUT_TAGS, ids):
        input_tags[(row.run_uuid, row.dataset_uuid)][row.key] = row.value
    for row in rows:
        runs[row.run_uuid].dataset_inputs.append(DatasetInput(
            name=row.name, digest=row.digest, source_type=row.source_type, source=row.source,
            schema=row.schema, profile=row.profile,
            tags=input_tags.get((row.run_uuid, row.dataset_uuid), {})))

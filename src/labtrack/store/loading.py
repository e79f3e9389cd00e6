"""Reading whole runs: one query per table for a whole page of runs, as Run objects or as JSON text."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring_ascii as _str_text
from typing import Any

from sqlalchemy import Connection, bindparam, select

from labtrack.entities import (FINITE_METRIC_TEXT, FLOAT_MAX, DatasetInput, Metric, Run, RunInfo, double_text,
                               key_head_text, metric_rest_text, run_info_text, run_text)
from labtrack.store import schema as s
from labtrack.store.dialect import cached, raw_rows, raw_rows_positional

_NAN_TEXT = '"NaN"'
_CHUNK = 900  # stays under every backend's bound-parameter limit
# An IN list is padded to one of these lengths, so a few compiled statements
# serve every page; the padding ("") matches no run.
_IN_LENGTHS = (1, 4, 16, 64, 256, _CHUNK)


def _of_runs(*columns: Any) -> Any:
    """``SELECT columns WHERE run_uuid IN :ids``, built once (building costs more than running)."""
    table = columns[0].table
    return select(*columns).where(table.c.run_uuid.in_(bindparam("ids", expanding=True)))


_lm, _ri, _ds, _it, _r = s.latest_metrics, s.run_inputs, s.datasets, s.input_tags, s.runs
# A run's own columns, in the order ``runs_from_rows`` reads them.
RUN_COLUMNS = (_r.c.run_uuid, _r.c.experiment_id, _r.c.name, _r.c.user_id, _r.c.status, _r.c.start_time,
               _r.c.end_time, _r.c.artifact_uri, _r.c.lifecycle_stage)
_RUNS = _of_runs(*RUN_COLUMNS)
# In their primary key's order (free on SQLite): a run's rows together, its keys in one order on every backend.
_PARAMS = _of_runs(s.params.c.run_uuid, s.params.c.key, s.params.c.value).order_by(
    s.params.c.run_uuid, s.params.c.key)
_TAGS = _of_runs(s.tags.c.run_uuid, s.tags.c.key, s.tags.c.value).order_by(s.tags.c.run_uuid, s.tags.c.key)
_LATEST = _of_runs(_lm.c.run_uuid, _lm.c.key, _lm.c.value, _lm.c.is_nan, _lm.c.timestamp, _lm.c.step).order_by(
    _lm.c.run_uuid, _lm.c.key)
_MODEL_INPUTS = _of_runs(s.run_model_inputs.c.run_uuid, s.run_model_inputs.c.model_id)
_MODEL_OUTPUTS = _of_runs(s.run_model_outputs.c.run_uuid, s.run_model_outputs.c.model_id,
                          s.run_model_outputs.c.step)
_INPUTS = (select(_ri.c.run_uuid, _ds.c.dataset_uuid, _ds.c.name, _ds.c.digest, _ds.c.source_type, _ds.c.source,
                  _ds.c.schema, _ds.c.profile)
           .join(_ds, _ds.c.dataset_uuid == _ri.c.dataset_uuid)
           .where(_ri.c.run_uuid.in_(bindparam("ids", expanding=True))).order_by(_ri.c.run_uuid, _ds.c.name))
_INPUT_TAGS = _of_runs(_it.c.run_uuid, _it.c.dataset_uuid, _it.c.key, _it.c.value)


def _rows(conn: Connection, name: str, stmt: Any, ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """Rows of ``stmt`` for these run ids, as plain tuples.

    SQLAlchemy renders an expanding IN's placeholders anew on every execution
    and wraps every row: for a page of 1,000 runs that cost more than SQLite's
    own work.  Here the statement is compiled once per padded length, and with
    positional placeholders the padded ids are its parameters as they are.
    """
    n = next(k for k in _IN_LENGTHS if k >= len(ids))
    compiled = cached(conn, f"runs_in:{name}:{n}", lambda c: _compile_in(c, stmt, n))
    if compiled.positional:
        return raw_rows_positional(conn, compiled, (*ids, *[""] * (n - len(ids))))
    values = {f"ids_{i}": v for i, v in enumerate(ids, 1)}
    for i in range(len(ids) + 1, n + 1):
        values[f"ids_{i}"] = ""
    return raw_rows(conn, compiled, values)


def _compile_in(conn: Connection, stmt: Any, n: int) -> Any:
    compiled = stmt.params(ids=[""] * n).compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    if compiled.positional:
        assert tuple(compiled.positiontup) == tuple(f"ids_{i}" for i in range(1, n + 1)), compiled.positiontup
    return compiled


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
    found: dict[str, tuple[Any, ...]] = {}
    for part in chunks(run_ids):
        found.update((row[0], row) for row in _rows(conn, "runs", _RUNS, part))
    return runs_from_rows(conn, [found[r] for r in run_ids if r in found])


def runs_from_rows(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> list[Run]:
    """Full runs, in order, from rows of ``RUN_COLUMNS`` (a search selects them with its ids)."""
    runs: dict[str, Run] = {}
    for (run_uuid, experiment_id, name, user_id, status, start_time, end_time, artifact_uri,
         lifecycle_stage) in rows:
        runs[run_uuid] = Run(info=RunInfo(
            run_id=run_uuid, experiment_id=str(experiment_id), run_name=name, user_id=user_id,
            status=status, start_time=start_time, end_time=end_time, artifact_uri=artifact_uri,
            lifecycle_stage=lifecycle_stage))
    for part in chunks(list(runs)):
        _attach(conn, runs, part)
    return list(runs.values())


def _attach(conn: Connection, runs: dict[str, Run], ids: Sequence[str]) -> None:
    for run_uuid, key, value in _rows(conn, "params", _PARAMS, ids):
        runs[run_uuid].params[key] = value
    for run_uuid, key, value in _rows(conn, "tags", _TAGS, ids):
        runs[run_uuid].tags[key] = value
    for run_uuid, key, value, is_nan, timestamp, step in _rows(conn, "latest", _LATEST, ids):
        runs[run_uuid].metrics[key] = Metric(
            key=key, value=metric_value(value, is_nan), timestamp=timestamp, step=step)
    _attach_inputs(conn, runs, ids)
    for run_uuid, model_id in _rows(conn, "model_inputs", _MODEL_INPUTS, ids):
        runs[run_uuid].model_inputs.append(model_id)
    for run_uuid, model_id, step in _rows(conn, "model_outputs", _MODEL_OUTPUTS, ids):
        runs[run_uuid].model_outputs.append((model_id, step))


def _attach_inputs(conn: Connection, runs: dict[str, Run], ids: Sequence[str]) -> None:
    rows = _rows(conn, "inputs", _INPUTS, ids)
    if not rows:
        return
    input_tags: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for run_uuid, dataset_uuid, key, value in _rows(conn, "input_tags", _INPUT_TAGS, ids):
        input_tags[(run_uuid, dataset_uuid)][key] = value
    for run_uuid, dataset_uuid, name, digest, source_type, source, schema, profile in rows:
        runs[run_uuid].dataset_inputs.append(DatasetInput(
            name=name, digest=digest, source_type=source_type, source=source, schema=schema, profile=profile,
            tags=input_tags.get((run_uuid, dataset_uuid), {})))


def runs_text_from_rows(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> list[str]:
    """``[run.to_json_text() for run in runs_from_rows(conn, rows)]``, written straight from the rows.

    A search page of 1,000 runs holds some 15,000 params, tags and metrics: making a
    Run, a RunInfo and a Metric per row, then reading them back, was a third of the
    page's server time, so the text of each is made from its row.  A key repeats
    from run to run: its JSON is escaped once a page.  The rare run with inputs or
    outputs, or with a field that is not a string, goes through ``runs_from_rows``.
    """
    ids = [row[0] for row in rows]
    params: dict[str, list[str]] = {run_id: [] for run_id in ids}
    tags: dict[str, list[str]] = {run_id: [] for run_id in ids}
    metrics: dict[str, list[str]] = {run_id: [] for run_id in ids}
    heads: dict[str, str] = {}
    whole: set[str] = set()  # runs that need the Run object
    for part in chunks(ids):
        for into, name, stmt in ((params, "params", _PARAMS), (tags, "tags", _TAGS)):
            last, items = None, None
            for run_uuid, key, value in _rows(conn, name, stmt, part):
                if run_uuid != last:  # a run's rows come together: look it up once
                    last, items = run_uuid, into[run_uuid]
                head = heads.get(key)
                try:
                    if head is None:
                        head = heads[key] = key_head_text(key)
                    items.append(f"{head}{_str_text(value)}}}")  # type: ignore[union-attr]
                except TypeError:
                    whole.add(run_uuid)
        last = None
        for run_uuid, key, value, is_nan, timestamp, step in _rows(conn, "latest", _LATEST, part):
            if run_uuid != last:
                last, items = run_uuid, metrics[run_uuid]
            head = heads.get(key)
            try:
                if head is None:
                    head = heads[key] = key_head_text(key)
                if not is_nan and -FLOAT_MAX <= value <= FLOAT_MAX:  # nearly every metric: one format in C
                    items.append(FINITE_METRIC_TEXT % (head, value, timestamp, step))  # type: ignore[union-attr]
                else:
                    text = _NAN_TEXT if is_nan else double_text(value)
                    items.append(f"{head}{text}{metric_rest_text(timestamp, step)}}}")  # type: ignore[union-attr]
            except TypeError:
                whole.add(run_uuid)
        for name, stmt in (("inputs", _INPUTS), ("model_inputs", _MODEL_INPUTS), ("model_outputs", _MODEL_OUTPUTS)):
            whole.update(row[0] for row in _rows(conn, name, stmt, part))
    out: list[str] = []
    for row in rows:
        run_uuid = row[0]
        if run_uuid not in whole:
            try:
                info = run_info_text(run_uuid, row[2], str(row[1]), row[3], row[4], row[7], row[8], row[5], row[6])
                out.append(run_text(info, ",".join(metrics[run_uuid]), ",".join(params[run_uuid]),
                                    ",".join(tags[run_uuid])))
                continue
            except TypeError:
                pass
        out.append(runs_from_rows(conn, [row])[0].to_json_text())
    return out

"""Writing imported MLflow records into labtrack's database, in bulk, idempotently.

Every function takes the writer's connection (``TrackingStore.write``) and
applies a batch of records so that applying it again changes nothing: runs,
logged models and model versions keep their MLflow ids, experiments are
matched by name, params and metric points are inserted or ignored (identical
points are one point, MLflow's rule), and tags are overwritten.  What a
later import finds changed in MLflow (a run that finished, a version that
moved stage) is updated.  Counting rows before and after is the caller's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from labtrack.entities import DatasetInput, MetricSeries
from labtrack.errors import InvalidParameterValue
from labtrack.imports.records import (
    EvalDatasetRecord,
    ExperimentRecord,
    LoggedModelRecord,
    RegisteredModelRecord,
    RunRecord,
    ScorerVersionRecord,
    TraceRecord,
)
from labtrack.registry_entities import DELETED_STAGE
from labtrack.store import metrics as metric_rows
from labtrack.store import schema as s
from labtrack.store.dialect import upsert
from labtrack.store.eval_datasets import input_hash, json_text
from labtrack.store.model_sources import PROMPT_SOURCES, resolve_source
from labtrack.store.scorers import put_imported
from labtrack.store.tracking import _dataset_uuid, join_uri, now_ms

# Tables whose row counts make the import's summary (before and after).
COUNTED = {
    "experiments": s.experiments, "runs": s.runs, "params": s.params, "tags": s.tags,
    "metric points": s.metrics, "dataset inputs": s.run_inputs, "logged models": s.logged_models,
    "registered models": s.registered_models, "model versions": s.model_versions,
    "aliases": s.registered_model_aliases, "traces": s.traces, "assessments": s.assessments,
    "trace links": s.trace_runs, "evaluation datasets": s.eval_datasets, "dataset records": s.eval_dataset_records,
    "scorers": s.scorers, "scorer versions": s.scorer_versions,
}


def counts(conn: Connection) -> dict[str, int]:
    """Rows per imported kind, for the summary's "copied" figures."""
    return {name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in COUNTED.items()}


def _insert_ignore(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(upsert(conn, table).on_conflict_do_nothing(), rows)


def _overwrite(conn: Connection, table: Any, rows: list[dict[str, Any]], keys: Sequence[str],
               values: Sequence[str]) -> None:
    if rows:
        stmt = upsert(conn, table)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys),
                                                set_={v: stmt.excluded[v] for v in values}), rows)


# -- experiments -----------------------------------------------------------------------------

def experiments(conn: Connection, records: Sequence[ExperimentRecord], default_root: str) -> dict[str, str]:
    """Match or create each experiment; return MLflow id -> labtrack id.

    An experiment of the same name is the same experiment (a second import, or
    MLflow's "Default" and ours); a new one keeps its MLflow id when it is free,
    so ``#/experiments/<id>`` links keep working.
    """
    e = s.experiments
    by_name = {r.name: r.experiment_id for r in conn.execute(select(e.c.name, e.c.experiment_id))}
    taken = set(by_name.values())
    mapping: dict[str, str] = {}
    t = now_ms()
    for rec in records:
        if rec.name in by_name:
            dst = by_name[rec.name]
        else:
            wanted = int(rec.experiment_id) if rec.experiment_id.isdigit() else None
            values = {"name": rec.name, "artifact_location": "", "lifecycle_stage": rec.lifecycle_stage,
                      "creation_time": rec.creation_time or t, "last_update_time": rec.last_update_time or t}
            # A file store's ids are 18 digits: an INTEGER column on PostgreSQL holds 31 bits.
            if wanted is not None and wanted not in taken and wanted < 2**31:
                values["experiment_id"] = wanted
            dst = conn.execute(insert(e).values(**values)).inserted_primary_key[0]
            conn.execute(update(e).where(e.c.experiment_id == dst)
                         .values(artifact_location=join_uri(default_root, str(dst))))
            by_name[rec.name] = dst
            taken.add(dst)
        mapping[rec.experiment_id] = str(dst)
        _overwrite(conn, s.experiment_tags, [{"experiment_id": dst, "key": k, "value": v}
                                             for k, v in rec.tags.items()], ("experiment_id", "key"), ("value",))
    if conn.dialect.name == "postgresql":
        # Ids inserted explicitly do not move the serial's sequence: move it past them.
        conn.execute(text("SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'), "
                          "GREATEST((SELECT MAX(experiment_id) FROM experiments), 1))"))
    return mapping


def experiment_locations(conn: Connection) -> dict[str, str]:
    e = s.experiments
    return {str(i): loc for i, loc in conn.execute(select(e.c.experiment_id, e.c.artifact_location))}


# -- runs ------------------------------------------------------------------------------------

def runs(conn: Connection, records: Sequence[RunRecord], exp_ids: dict[str, str],
         locations: dict[str, str]) -> dict[str, str]:
    """Insert new runs, bring known ones up to date; return run id -> its labtrack artifact URI."""
    r = s.runs
    ids = [rec.run_id for rec in records]
    known = {row.run_uuid: row.artifact_uri for row in conn.execute(
        select(r.c.run_uuid, r.c.artifact_uri).where(r.c.run_uuid.in_(bindparam("ids", expanding=True))),
        {"ids": ids})}
    t = now_ms()
    new, changed, uris = [], [], {}
    for rec in records:
        exp_id = exp_ids[rec.experiment_id]
        row = {"run_uuid": rec.run_id, "name": rec.name, "status": rec.status, "end_time": rec.end_time,
               "lifecycle_stage": rec.lifecycle_stage, "deleted_time": rec.deleted_time}
        if rec.run_id in known:
            uris[rec.run_id] = known[rec.run_id]
            changed.append({**row, "b_run": rec.run_id})
            continue
        uri = join_uri(locations[exp_id], rec.run_id, "artifacts")
        uris[rec.run_id] = uri
        new.append({**row, "experiment_id": int(exp_id), "user_id": rec.user_id or "",
                    "start_time": rec.start_time, "artifact_uri": uri, "last_update_time": t})
    if new:
        conn.execute(insert(r), new)
    if changed:
        conn.execute(update(r).where(r.c.run_uuid == bindparam("b_run")).values(
            name=bindparam("name"), status=bindparam("status"), end_time=bindparam("end_time"),
            lifecycle_stage=bindparam("lifecycle_stage"), deleted_time=bindparam("deleted_time")),
            [{k: v for k, v in c.items() if k != "run_uuid"} for c in changed])
    _insert_ignore(conn, s.params, [{"run_uuid": rec.run_id, "key": k, "value": v}
                                    for rec in records for k, v in rec.params.items()])
    _overwrite(conn, s.tags, [{"run_uuid": rec.run_id, "key": k, "value": v}
                              for rec in records for k, v in rec.tags.items()], ("run_uuid", "key"), ("value",))
    for rec in records:
        exp_id = int(exp_ids[rec.experiment_id])
        for d in rec.datasets:
            ds_id = _dataset_uuid(conn, exp_id, DatasetInput(
                name=d.name, digest=d.digest, source_type=d.source_type, source=d.source, schema=d.schema,
                profile=d.profile, tags=dict(d.tags)))
            _insert_ignore(conn, s.run_inputs, [{"run_uuid": rec.run_id, "dataset_uuid": ds_id}])
            _overwrite(conn, s.input_tags, [{"run_uuid": rec.run_id, "dataset_uuid": ds_id, "key": k, "value": v}
                                            for k, v in d.tags.items()], ("run_uuid", "dataset_uuid", "key"),
                       ("value",))
    _insert_ignore(conn, s.run_model_inputs, [{"run_uuid": rec.run_id, "model_id": m}
                                              for rec in records for m in rec.model_inputs])
    _overwrite(conn, s.run_model_outputs, [{"run_uuid": rec.run_id, "model_id": m, "step": st}
                                           for rec in records for m, st in rec.model_outputs],
               ("run_uuid", "model_id"), ("step",))
    return uris


def metric_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Points per (run, key) already here: an incremental import copies only series that grew."""
    m, ser = s.metrics, s.metric_series
    return {(r[0], r[1]): r[2] for r in conn.execute(
        select(ser.c.run_uuid, ser.c.key, func.count()).select_from(ser.join(m, m.c.series_id == ser.c.series_id))
        .group_by(ser.c.series_id, ser.c.run_uuid, ser.c.key))}


def metrics(conn: Connection, run_id: str, series: Sequence[MetricSeries]) -> None:
    """Whole histories through the store's bulk path (latest values and chart summaries included)."""
    metric_rows.insert_series(conn, run_id, series)


# -- logged models ---------------------------------------------------------------------------

def logged_models(conn: Connection, records: Sequence[LoggedModelRecord], exp_ids: dict[str, str],
                  locations: dict[str, str]) -> dict[str, str]:
    """Insert new logged models (known ones are brought up to date); return id -> artifact location."""
    lm = s.logged_models
    known = {row.model_id: row.artifact_location for row in conn.execute(
        select(lm.c.model_id, lm.c.artifact_location).where(
            lm.c.model_id.in_(bindparam("ids", expanding=True))), {"ids": [r.model_id for r in records]})}
    out: dict[str, str] = {}
    new, changed = [], []
    for rec in records:
        if rec.model_id in known:
            out[rec.model_id] = known[rec.model_id]
            changed.append({"b_id": rec.model_id, "status": rec.status, "lifecycle_stage": rec.lifecycle_stage,
                            "last_updated_timestamp_ms": rec.last_updated_timestamp_ms})
            continue
        exp_id = exp_ids[rec.experiment_id]
        loc = join_uri(locations[exp_id], "models", rec.model_id, "artifacts")
        out[rec.model_id] = loc
        new.append({"model_id": rec.model_id, "experiment_id": int(exp_id), "name": rec.name,
                    "artifact_location": loc, "creation_timestamp_ms": rec.creation_timestamp_ms,
                    "last_updated_timestamp_ms": rec.last_updated_timestamp_ms, "status": rec.status,
                    "lifecycle_stage": rec.lifecycle_stage, "model_type": rec.model_type,
                    "source_run_id": rec.source_run_id, "status_message": rec.status_message})
    if new:
        conn.execute(insert(lm), new)
    if changed:
        conn.execute(update(lm).where(lm.c.model_id == bindparam("b_id")).values(
            status=bindparam("status"), lifecycle_stage=bindparam("lifecycle_stage"),
            last_updated_timestamp_ms=bindparam("last_updated_timestamp_ms")), changed)
    _overwrite(conn, s.logged_model_params, [{"model_id": r.model_id, "key": k, "value": v}
                                             for r in records for k, v in r.params.items()],
               ("model_id", "key"), ("value",))
    _overwrite(conn, s.logged_model_tags, [{"model_id": r.model_id, "key": k, "value": v}
                                           for r in records for k, v in r.tags.items()], ("model_id", "key"),
               ("value",))
    _insert_ignore(conn, s.logged_model_metrics, [
        {"model_id": r.model_id, "key": m.key, "step": m.step, "timestamp": m.timestamp, "run_uuid": m.run_id,
         "value": 0.0 if m.value != m.value else m.value, "is_nan": m.value != m.value,
         "dataset_name": m.dataset_name, "dataset_digest": m.dataset_digest} for r in records for m in r.metrics])
    return out


# -- the model registry ----------------------------------------------------------------------

def registered_models(conn: Connection, records: Sequence[RegisteredModelRecord],
                      rewrite: Callable[[str], str], default_root: str) -> list[str]:
    """Insert or update registered models, versions, tags and aliases; return what was skipped.

    Each version's source is first rewritten into labtrack's artifact root
    (``rewrite``), then checked as any new version's source is: a source that
    still points outside labtrack's artifacts is not imported (it is named in
    the returned list), because a model version must never serve files from
    outside the store.
    """
    rm, mv = s.registered_models, s.model_versions
    skipped: list[str] = []
    known_models = {r[0] for r in conn.execute(select(rm.c.name).where(
        rm.c.name.in_(bindparam("names", expanding=True))), {"names": [r.name for r in records]})}
    for rec in records:
        if rec.name in known_models:
            conn.execute(update(rm).where(rm.c.name == rec.name).values(
                description=rec.description, last_updated_time=rec.last_updated_time or now_ms()))
        else:
            conn.execute(insert(rm).values(name=rec.name, creation_time=rec.creation_time or now_ms(),
                                           last_updated_time=rec.last_updated_time or now_ms(),
                                           description=rec.description))
        _overwrite(conn, s.registered_model_tags, [{"name": rec.name, "key": k, "value": v}
                                                   for k, v in rec.tags.items()], ("name", "key"), ("value",))
        is_prompt = rec.tags.get("mlflow.prompt.is_prompt", "").lower() == "true"
        have = {r[0] for r in conn.execute(select(mv.c.version).where(mv.c.name == rec.name))}
        imported: set[int] = set(have)
        for v in rec.versions:
            if v.version in have:
                conn.execute(update(mv).where(mv.c.name == rec.name, mv.c.version == v.version).values(
                    current_stage=v.current_stage, description=v.description, status=v.status,
                    last_updated_time=v.last_updated_time or now_ms()))
            else:
                source, model_id = v.source, None
                if v.current_stage != DELETED_STAGE:
                    try:
                        resolved = resolve_source(conn, rewrite(v.source) if v.source else v.source, v.run_id,
                                                  None, default_root,
                                                  is_prompt=is_prompt and v.source in PROMPT_SOURCES)
                    except InvalidParameterValue:
                        skipped.append(f"{rec.name} version {v.version} (source {v.source[:200]})")
                        continue
                    source, model_id = resolved.source, resolved.model_id
                conn.execute(insert(mv).values(
                    name=rec.name, version=v.version, creation_time=v.creation_time or now_ms(),
                    last_updated_time=v.last_updated_time or now_ms(), description=v.description,
                    user_id=v.user_id, current_stage=v.current_stage, source=source, run_id=v.run_id,
                    run_link=v.run_link, status=v.status, status_message=v.status_message, model_id=model_id))
            imported.add(v.version)
            _overwrite(conn, s.model_version_tags, [{"name": rec.name, "version": v.version, "key": k, "value": val}
                                                    for k, val in v.tags.items()], ("name", "version", "key"),
                       ("value",))
        _overwrite(conn, s.registered_model_aliases,
                   [{"name": rec.name, "alias": a, "version": ver} for a, ver in rec.aliases.items()
                    if ver in imported], ("name", "alias"), ("version",))
    return skipped


# -- MLflow 3 traces ------------------------------------------------------------------------

def trace_ids(conn: Connection) -> set[str]:
    """The traces already here: their spans are not read from the source again."""
    return {r[0] for r in conn.execute(select(s.traces.c.trace_id))}


def traces(conn: Connection, records: Sequence[TraceRecord], exp_ids: dict[str, str]) -> list[str]:
    """New traces with their spans, tags and metadata; for every trace, the assessments and run
    links it lacks (``store.traces.put_imported``).  Returns what could not be imported."""
    from labtrack.errors import LabtrackError
    from labtrack.store.traces import otlp_span_row, put_imported

    skipped = []
    for rec in records:
        try:  # everything is checked before the trace's first row is written
            spans = None if rec.spans is None else [otlp_span_row(rec.trace_id, d) for d in rec.spans]
            put_imported(conn, int(exp_ids[rec.experiment_id]), rec.info, spans, rec.assessments, rec.runs)
        except LabtrackError as e:
            skipped.append(f"trace {rec.trace_id} ({e.message[:200]})")
    return skipped


# -- evaluation datasets ---------------------------------------------------------------------

def eval_datasets(conn: Connection, records: Sequence[EvalDatasetRecord], exp_ids: dict[str, str]) -> list[str]:
    """Datasets and their records with their MLflow ids, and their links to imported experiments.
    What MLflow may change (a dataset's name, tags, schema; a record's merged outputs, expectations
    and tags; times and users) is overwritten, as a run's tags are.  A record whose inputs the copy
    holds under another id (added here since) is left out and named."""
    skipped = []
    d, r_t = s.eval_datasets, s.eval_dataset_records
    for ds in records:
        _overwrite(conn, d, [{
            "dataset_id": ds.dataset_id, "name": ds.name, "digest": ds.digest or "", "schema": ds.schema,
            "created_time": ds.created_time, "last_update_time": ds.last_update_time, "created_by": ds.created_by,
            "last_updated_by": ds.last_updated_by, "tags": json_text(ds.tags) if ds.tags else None,
        }], ["dataset_id"], ["name", "digest", "schema", "last_update_time", "last_updated_by", "tags"])
        _insert_ignore(conn, s.eval_dataset_experiments, [
            {"dataset_id": ds.dataset_id, "experiment_id": int(exp_ids[e])} for e in dict.fromkeys(ds.experiment_ids)
            if e in exp_ids])
        have = {row[0]: row[1] for row in conn.execute(select(r_t.c.input_hash, r_t.c.dataset_record_id)
                                                      .where(r_t.c.dataset_id == ds.dataset_id))}
        rows = []
        for rec in ds.records:
            key = input_hash(rec.inputs)
            if have.setdefault(key, rec.record_id) != rec.record_id:
                skipped.append(f"record {rec.record_id} of dataset {ds.dataset_id} (record {have[key]} has its inputs)")
                continue
            rows.append({"dataset_record_id": rec.record_id, "dataset_id": ds.dataset_id, "input_hash": key,
                         "inputs": json_text(rec.inputs), "outputs": json_text(rec.outputs),
                         "expectations": json_text(rec.expectations), "tags": json_text(rec.tags),
                         "source": json_text(rec.source), "source_type": rec.source_type,
                         "created_time": rec.created_time, "last_update_time": rec.last_update_time,
                         "created_by": rec.created_by, "last_updated_by": rec.last_updated_by})
        _overwrite(conn, r_t, rows, ["dataset_record_id"], ["outputs", "expectations", "tags", "source", "source_type",
                                                            "last_update_time", "last_updated_by"])
    return skipped


def scorers(conn: Connection, records: Sequence[ScorerVersionRecord], exp_ids: dict[str, str]) -> list[str]:
    """Registered scorers' versions with their MLflow ids, versions and times, in imported
    experiments; a version already here is kept (versions never change).  One line for each
    left out (the experiment's scorer of that name was registered here since, under another id)."""
    reasons = (put_imported(conn, int(exp_ids[v.experiment_id]), v.scorer_id, v.name, v.version,
                            v.serialized_scorer, v.creation_time) for v in records)
    return [why for why in reasons if why is not None]


__all__ = ["COUNTED", "counts", "eval_datasets", "experiment_locations", "experiments", "logged_models",
           "metric_counts", "metrics", "registered_models", "runs", "scorers", "trace_ids", "traces"]

"""An MLflow SQL store as an import source: an SQLite file or any SQLAlchemy URL, read only.

Which tables and columns exist is decided by the database's alembic revision
(``mlflow_data.REVISIONS``, MLflow's migration chain): a column that a
migration added is read only at or after that migration, so every MLflow
schema from 1.x to 3.17 reads with plain SELECTs.  An SQLite file is opened
through ``mlflow_data.open_readonly`` (no journal, no WAL switch, no lock file);
other databases get read-only transactions.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from labtrack import mlflow_data
from labtrack.entities import MetricSeries
from labtrack.errors import InvalidParameterValue
from labtrack.imports.records import (
    DatasetRecord,
    EvalDatasetRecord,
    ExperimentRecord,
    LoggedModelRecord,
    ModelMetricRecord,
    ModelVersionRecord,
    RegisteredModelRecord,
    RunRecord,
    ScorerVersionRecord,
    TraceRecord,
)

# The migrations that added what the importer reads (MLflow's revision ids).
STEP = "451aebb31d03"
IS_NAN = "181f10493468"
EXPERIMENT_TAGS = "df50e92ffc5e"
REGISTRY = "2b4d017a5e9b"
REGISTERED_MODEL_TAGS = "728d730b5ebd"
MODEL_VERSION_TAGS = "27a6a02d2cf1"
RUN_LINK = "84291f40a231"
DELETED_TIME = "0c779009ac13"
EXPERIMENT_TIMES = "97727af70f4d"
ALIASES = "3500859a5d39"
DATASETS = "7f2a7d5fae7d"
STORAGE_LOCATION = "acf3f17fdcc7"
LOGGED_MODELS = "400f98739977"
INPUT_STEP = "6953534de441"
TRACES = "867495a8f9d4"  # trace_info, trace_tags, trace_request_metadata (MLflow 2.13)
ASSESSMENTS = "770bee3ae1dd"
SPANS = "a1b2c3d4e5f6"  # spans in the database; before, in the trace's traces.json artifact
TRACE_LINKS = "de4033877273"  # entity_associations: link_traces_to_run
EVAL_DATASETS = "71994744cf8e"  # evaluation_datasets, _tags, _records (MLflow 3.3)
SCORERS = "534353b11cbc"  # scorers, scorer_versions (MLflow 3.2)

_CHUNK = 400  # run ids per IN list (SQLite's old limit is 999 parameters)
_TRACES_PER_READ = 200


class SqlSource:
    """Reads an MLflow SQL store; ``close()`` when done."""

    kind = "sql"

    def __init__(self, url: str, artifact_base: str | os.PathLike | None = None) -> None:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        self.url = url
        u = make_url(url)
        self.path: Path | None = None
        if u.get_backend_name() == "sqlite":
            if not u.database or u.database == ":memory:":
                raise InvalidParameterValue(f"{url} names no database file")
            self.path = Path(u.database).expanduser().resolve()
            if not self.path.is_file():
                raise InvalidParameterValue(f"{self.path} does not exist")
            path = self.path
            self.engine = create_engine("sqlite://", creator=lambda: mlflow_data.open_readonly(path),
                                        poolclass=NullPool)
            self.label = str(self.path)
        else:
            from labtrack.store.engine import normalize_url

            self.engine = create_engine(normalize_url(url), poolclass=NullPool)
            if self.engine.dialect.name == "postgresql":
                @event.listens_for(self.engine, "begin")
                def _read_only(conn: Any) -> None:
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            self.label = u.render_as_string(hide_password=True)
        # Artifacts logged with mlflow-artifacts:/ URIs live under the MLflow server's
        # --artifacts-destination; by default ./mlartifacts beside the database.
        base = artifact_base or (self.path.parent / "mlartifacts" if self.path else None)
        self.artifact_base = Path(base).resolve() if base else None
        self._conn = self.engine.connect()
        self.revision = self._revision()
        found = mlflow_data.inspect_sqlite(self.path) if self.path else None
        if self.path is not None and found is None:
            raise InvalidParameterValue(f"{self.path} is not an MLflow database")

    # -- plumbing -------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        from sqlalchemy import text

        return list(self._conn.execute(text(sql), params or {}))

    def _in(self, sql: str, ids: Sequence[str]) -> Iterable[Any]:
        """``sql`` has one ``{ids}`` placeholder for a list of string ids."""
        from sqlalchemy import bindparam, text

        for i in range(0, len(ids), _CHUNK):
            chunk = list(ids[i:i + _CHUNK])
            stmt = text(sql.format(ids=":ids")).bindparams(bindparam("ids", expanding=True))
            yield from self._conn.execute(stmt, {"ids": chunk})

    def _revision(self) -> str:
        from sqlalchemy import inspect

        insp = inspect(self._conn)
        if not insp.has_table("alembic_version"):
            if not insp.has_table("runs"):
                raise InvalidParameterValue(f"{self.label} holds no MLflow tables")
            return mlflow_data.BASE
        row = self._rows("SELECT version_num FROM alembic_version")
        return row[0][0] if row else mlflow_data.BASE

    def has(self, revision: str) -> bool:
        return mlflow_data.at_least(self.revision, revision)

    def describe(self) -> str:
        return f"MLflow {mlflow_data.mlflow_versions(self.revision)} database {self.label}"

    # -- experiments and runs ---------------------------------------------------------------
    def experiments(self) -> list[ExperimentRecord]:
        times = ", creation_time, last_update_time" if self.has(EXPERIMENT_TIMES) else ""
        out = {}
        for r in self._rows(f"SELECT experiment_id, name, artifact_location, lifecycle_stage{times} "
                            "FROM experiments ORDER BY experiment_id"):
            m = r._mapping
            out[str(m["experiment_id"])] = ExperimentRecord(
                str(m["experiment_id"]), m["name"], m["artifact_location"] or "", m["lifecycle_stage"] or "active",
                m.get("creation_time"), m.get("last_update_time"))
        if self.has(EXPERIMENT_TAGS):
            for exp_id, key, value in self._rows("SELECT experiment_id, key, value FROM experiment_tags"):
                if str(exp_id) in out:
                    out[str(exp_id)].tags[key] = value or ""
        return list(out.values())

    def run_ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT run_uuid FROM runs ORDER BY start_time, run_uuid")]

    def runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        deleted = ", deleted_time" if self.has(DELETED_TIME) else ""
        runs: dict[str, RunRecord] = {}
        for r in self._in("SELECT run_uuid, experiment_id, name, user_id, status, start_time, end_time, "
                          f"lifecycle_stage, artifact_uri{deleted} FROM runs WHERE run_uuid IN {{ids}}", run_ids):
            m = r._mapping
            runs[m["run_uuid"]] = RunRecord(
                m["run_uuid"], str(m["experiment_id"]), m["name"] or "", m["user_id"] or "",
                m["status"] or "FINISHED", m["start_time"], m["end_time"], m["lifecycle_stage"] or "active",
                m["artifact_uri"] or "", m.get("deleted_time"))
        ids = list(runs)
        for run_id, key, value in self._in("SELECT run_uuid, key, value FROM params WHERE run_uuid IN {ids}", ids):
            runs[run_id].params[key] = value if value is not None else ""
        for run_id, key, value in self._in("SELECT run_uuid, key, value FROM tags WHERE run_uuid IN {ids}", ids):
            runs[run_id].tags[key] = value if value is not None else ""
        if self.has(DATASETS):
            self._attach_inputs(runs, ids)
        return [runs[i] for i in run_ids if i in runs]

    def _attach_inputs(self, runs: dict[str, RunRecord], ids: list[str]) -> None:
        step = "i.step" if self.has(INPUT_STEP) else "0"
        rows = list(self._in(
            f"SELECT i.input_uuid, i.source_type, i.source_id, i.destination_type, i.destination_id, {step} "
            "FROM inputs i WHERE (i.destination_type = 'RUN' AND i.destination_id IN {ids})", ids))
        rows += list(self._in(
            f"SELECT i.input_uuid, i.source_type, i.source_id, i.destination_type, i.destination_id, {step} "
            "FROM inputs i WHERE i.source_type IN ('RUN_INPUT', 'RUN_OUTPUT') AND i.source_id IN {ids}", ids))
        dataset_inputs = {r[0]: (r[2], r[4]) for r in rows if r[1] == "DATASET"}
        for _uuid, source_type, source_id, _dt, dest_id, st in rows:
            if source_type == "RUN_INPUT":
                runs[source_id].model_inputs.append(dest_id)
            elif source_type == "RUN_OUTPUT":
                runs[source_id].model_outputs.append((dest_id, int(st or 0)))
        if not dataset_inputs:
            return
        datasets = {}
        for r in self._in("SELECT dataset_uuid, name, digest, dataset_source_type, dataset_source, "
                          "dataset_schema, dataset_profile FROM datasets WHERE dataset_uuid IN {ids}",
                          sorted({d for d, _ in dataset_inputs.values()})):
            datasets[r[0]] = r
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for input_uuid, name, value in self._in("SELECT input_uuid, name, value FROM input_tags "
                                                "WHERE input_uuid IN {ids}", list(dataset_inputs)):
            tags[input_uuid][name] = value
        for input_uuid, (ds_id, run_id) in dataset_inputs.items():
            d = datasets.get(ds_id)
            if d is None or run_id not in runs:
                continue
            runs[run_id].datasets.append(DatasetRecord(d[1], d[2], d[3] or "", d[4] or "", d[5], d[6],
                                                       tags.get(input_uuid, {})))

    # -- metrics --------------------------------------------------------------------------
    def metric_counts(self) -> dict[tuple[str, str], int]:
        """Points per (run, key): what an incremental import compares with its copy."""
        return {(r[0], r[1]): r[2] for r in self._rows(
            "SELECT run_uuid, key, COUNT(*) FROM metrics GROUP BY run_uuid, key")}

    def metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricSeries]:
        """The full histories of a run's metrics (``keys``: only these)."""
        step = "step" if self.has(STEP) else "0"
        nan = "is_nan" if self.has(IS_NAN) else "0"
        sql = f"SELECT key, {step}, timestamp, value, {nan} FROM metrics WHERE run_uuid = :run"
        params: dict[str, Any] = {"run": run_id}
        wanted = set(keys) if keys is not None else None
        # The bulk of an import: on the DBAPI cursor, one fetchall, no per-row objects of SQLAlchemy's.
        cursor = self._conn.connection.driver_connection.cursor()
        try:
            cursor.execute(_positional(sql, self.engine.dialect.paramstyle),
                           _bind(params, self.engine.dialect.paramstyle))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        by_key: dict[str, list[Any]] = {}
        for row in rows:
            if wanted is None or row[0] in wanted:
                by_key.setdefault(row[0], []).append(row)
        out = []
        for key, points in by_key.items():
            _, steps, stamps, values, nans = zip(*points)
            out.append(MetricSeries(key, [int(s or 0) for s in steps], [int(t or 0) for t in stamps],
                                    [math.nan if n or v is None else float(v) for v, n in zip(values, nans)]))
        return out

    # -- logged models and the registry --------------------------------------------------------
    def logged_models(self) -> list[LoggedModelRecord]:
        if not self.has(LOGGED_MODELS):
            return []
        models: dict[str, LoggedModelRecord] = {}
        for r in self._rows("SELECT model_id, experiment_id, name, artifact_location, creation_timestamp_ms, "
                            "last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, "
                            "status_message FROM logged_models"):
            m = r._mapping
            models[m["model_id"]] = LoggedModelRecord(
                m["model_id"], str(m["experiment_id"]), m["name"], m["artifact_location"] or "",
                m["creation_timestamp_ms"] or 0, m["last_updated_timestamp_ms"] or 0,
                _logged_model_status(m["status"]), m["lifecycle_stage"] or "active", m["model_type"],
                m["source_run_id"], m["status_message"])
        for model_id, key, value in self._rows("SELECT model_id, param_key, param_value FROM logged_model_params"):
            if model_id in models:
                models[model_id].params[key] = value or ""
        for model_id, key, value in self._rows("SELECT model_id, tag_key, tag_value FROM logged_model_tags"):
            if model_id in models:
                models[model_id].tags[key] = value or ""
        for r in self._rows("SELECT model_id, metric_name, metric_timestamp_ms, metric_step, metric_value, "
                            "run_id, dataset_name, dataset_digest FROM logged_model_metrics"):
            if r[0] in models:
                value = math.nan if r[4] is None else float(r[4])
                models[r[0]].metrics.append(ModelMetricRecord(r[1], value, int(r[2] or 0), int(r[3] or 0),
                                                              r[5] or "", r[6], r[7]))
        return list(models.values())

    def registered_models(self) -> list[RegisteredModelRecord]:
        if not self.has(REGISTRY):
            return []
        models: dict[str, RegisteredModelRecord] = {}
        for name, created, updated, description in self._rows(
                "SELECT name, creation_time, last_updated_time, description FROM registered_models"):
            models.setdefault(name, RegisteredModelRecord(name, created or 0, updated or 0, description))
        extra = (", run_link" if self.has(RUN_LINK) else ", NULL") + \
                (", storage_location" if self.has(STORAGE_LOCATION) else ", NULL")
        versions: dict[tuple[str, int], ModelVersionRecord] = {}
        for r in self._rows("SELECT name, version, creation_time, last_updated_time, description, user_id, "
                            f"current_stage, source, run_id, status, status_message{extra} "
                            "FROM model_versions ORDER BY name, version"):
            if r[0] not in models or (r[0], r[1]) in versions:
                continue
            v = ModelVersionRecord(int(r[1]), r[7] or "", r[2] or 0, r[3] or 0, r[4], r[5], r[6] or "None",
                                   r[8] or None, r[11], r[9] or "READY", r[10], r[12])
            versions[(r[0], int(r[1]))] = v
            models[r[0]].versions.append(v)
        if self.has(REGISTERED_MODEL_TAGS):
            for name, key, value in self._rows("SELECT name, key, value FROM registered_model_tags"):
                if name in models:
                    models[name].tags[key] = value or ""
        if self.has(MODEL_VERSION_TAGS):
            for name, version, key, value in self._rows("SELECT name, version, key, value FROM model_version_tags"):
                v = versions.get((name, int(version)))
                if v is not None:
                    v.tags[key] = value or ""
        if self.has(ALIASES):
            for name, alias, version in self._rows("SELECT name, alias, version FROM registered_model_aliases"):
                if name in models:
                    models[name].aliases[alias] = int(version)
        return list(models.values())

    # -- evaluation datasets, and what is not imported -------------------------------------------
    def eval_datasets(self) -> list[EvalDatasetRecord]:
        from labtrack.imports import eval_dataset_rows

        return eval_dataset_rows.read(self._rows) if self.has(EVAL_DATASETS) else []

    def scorers(self, experiment_ids: Sequence[str] = ()) -> list[ScorerVersionRecord]:
        """Every version of every registered scorer (``scorers``, ``scorer_versions``), oldest first
        within a scorer; ``experiment_ids`` is for the server source's sake (all are read here)."""
        if not self.has(SCORERS):
            return []
        return [ScorerVersionRecord(str(exp), name, scorer_id, int(version), serialized, int(created or 0))
                for exp, name, scorer_id, version, serialized, created in self._rows(
                    "SELECT s.experiment_id, s.scorer_name, s.scorer_id, v.scorer_version, v.serialized_scorer,"
                    " v.creation_time FROM scorers s JOIN scorer_versions v ON v.scorer_id = s.scorer_id"
                    " ORDER BY s.experiment_id, s.scorer_name, v.scorer_version")]

    def not_imported(self) -> list[str]:
        """A line per kind of row this source holds that the import does not copy (``imports.unread``)."""
        from sqlalchemy import inspect

        from labtrack.imports.unread import sql_tables

        quote = self.engine.dialect.identifier_preparer.quote

        def count(table: str, where: str | None) -> int:
            return int(self._rows(f"SELECT COUNT(*) FROM {quote(table)}" + (f" WHERE {where}" if where else ""))[0][0])
        tables = inspect(self._conn).get_table_names()
        links = [(str(a), str(b), int(n)) for a, b, n in self._rows(
            "SELECT source_type, destination_type, COUNT(*) FROM entity_associations "
            "GROUP BY source_type, destination_type")] if "entity_associations" in tables else []
        return sql_tables(tables, count, links)

    # -- MLflow 3 traces -------------------------------------------------------------------------
    def traces(self, experiment_ids: Sequence[str], known: set[str],
               skip: Callable[[str], None]) -> Iterator[list[TraceRecord]]:
        """The traces of ``experiment_ids``, a batch at a time; the spans of ``known`` ones are not read."""
        from labtrack.imports import mlflow_traces as mt

        if not self.has(TRACES):
            return
        wanted = set(experiment_ids)
        ids = [r[0] for r in self._rows("SELECT request_id, experiment_id FROM trace_info "
                                        "ORDER BY timestamp_ms, request_id") if str(r[1]) in wanted]
        for i in range(0, len(ids), _TRACES_PER_READ):
            chunk = ids[i:i + _TRACES_PER_READ]
            pairs: dict[str, dict[str, dict[str, str]]] = {"trace_tags": defaultdict(dict),
                                                          "trace_request_metadata": defaultdict(dict)}
            for table, into in pairs.items():
                for trace_id, key, value in self._in(f"SELECT request_id, key, value FROM {table} "
                                                     "WHERE request_id IN {ids}", chunk):
                    into[trace_id][key] = value if value is not None else ""
            out: dict[str, TraceRecord] = {}
            # Every column: later MLflows add some (v3's previews, 3.x's trace_name), read where present.
            for r in self._in("SELECT * FROM trace_info WHERE request_id IN {ids}", chunk):
                m = r._mapping
                tid = m["request_id"]
                tags = pairs["trace_tags"][tid]
                if m.get("trace_name") and "mlflow.traceName" not in tags:  # MLflow moved it to a column
                    tags["mlflow.traceName"] = m["trace_name"]
                info = mt.trace_info(tid, str(m["experiment_id"]), m["timestamp_ms"], m["execution_time_ms"],
                                     m["status"], tags, pairs["trace_request_metadata"][tid],
                                     m.get("client_request_id"), m.get("request_preview"), m.get("response_preview"))
                out[tid] = TraceRecord(tid, str(m["experiment_id"]), info)
            if self.has(ASSESSMENTS):
                for r in self._in("SELECT * FROM assessments WHERE trace_id IN {ids} "
                                  "ORDER BY created_timestamp, assessment_id", chunk):
                    if r._mapping["trace_id"] in out:
                        out[r._mapping["trace_id"]].assessments.append(mt.assessment(r._mapping))
            if self.has(TRACE_LINKS):
                for trace_id, run_id in self._in(
                        "SELECT source_id, destination_id FROM entity_associations WHERE UPPER(source_type) = "
                        "'TRACE' AND UPPER(destination_type) = 'RUN' AND source_id IN {ids}", chunk):
                    if trace_id in out:
                        out[trace_id].runs.append(run_id)
            self._attach_spans([out[t] for t in chunk if t in out and t not in known], skip)
            yield [out[t] for t in chunk if t in out]

    def _attach_spans(self, records: list[TraceRecord], skip: Callable[[str], None]) -> None:
        """Spans from the ``spans`` table, else from the trace's ``traces.json`` artifact (MLflow 3 before
        the table, and traces whose spans MLflow kept as an artifact)."""
        import json

        from labtrack.imports import mlflow_traces as mt

        if not records:
            return
        by_id = {r.trace_id: r for r in records}
        if self.has(SPANS):
            for trace_id, content in self._in("SELECT trace_id, content FROM spans WHERE trace_id IN {ids} "
                                              "ORDER BY start_time_unix_nano", list(by_id)):
                try:
                    converted = mt.span(json.loads(content))
                except (TypeError, ValueError):
                    converted = None
                if converted is None:
                    skip(f"a span of trace {trace_id} (not MLflow 3's span JSON)")
                else:
                    by_id[trace_id].spans = (by_id[trace_id].spans or []) + [converted]
        for rec in records:
            if rec.spans is None:
                rec.spans = self._artifact_spans(rec, skip)

    def _artifact_spans(self, rec: TraceRecord, skip: Callable[[str], None]) -> list[dict[str, Any]]:
        from labtrack.imports.mlflow_traces import spans_file

        folder = self.artifact_folder(rec.info["tags"].get("mlflow.artifactLocation", ""))
        return spans_file(folder / "traces.json" if folder is not None else None, rec.trace_id, skip)

    # -- artifacts ----------------------------------------------------------------------------
    def artifact_folder(self, uri: str) -> Path | None:
        """The local folder an artifact URI of this store names, or None (not local)."""
        return local_artifact_folder(uri, self.artifact_base)


def local_artifact_folder(uri: str, artifact_base: Path | None) -> Path | None:
    """A local folder for ``file:``, plain paths and ``mlflow-artifacts:`` (under ``artifact_base``)."""
    if not uri:
        return None
    if uri.startswith("mlflow-artifacts:"):
        if artifact_base is None:
            return None
        rest = urlparse(uri).path.lstrip("/")
        return artifact_base / unquote(rest)
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri or (":" in uri.split("/")[0] and not uri.startswith("/")):
        return None  # s3://, gs://, dbfs:/ ...: not on this machine
    return Path(uri).expanduser()


def _logged_model_status(value: Any) -> str:
    if isinstance(value, int):
        return {1: "LOGGED_MODEL_PENDING", 2: "LOGGED_MODEL_READY", 3: "LOGGED_MODEL_UPLOAD_FAILED"}.get(
            value, "LOGGED_MODEL_READY")
    text = str(value or "READY")
    return text if text.startswith("LOGGED_MODEL_") else f"LOGGED_MODEL_{text}"


def _positional(sql: str, paramstyle: str) -> str:
    if paramstyle == "qmark":
        return sql.replace(":run", "?")
    if paramstyle in ("format", "pyformat"):
        return sql.replace(":run", "%(run)s") if paramstyle == "pyformat" else sql.replace(":run", "%s")
    return sql


def _bind(params: dict[str, Any], paramstyle: str) -> Any:
    if paramstyle in ("qmark", "format"):
        return (params["run"],)
    return params

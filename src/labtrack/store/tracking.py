"""The tracking store: experiments, runs, params, tags, metrics, inputs.

Every write is a closure handed to the single writer (``store.writer``); it
validates everything first and only then writes, inside a savepoint, so a
rejected request leaves no trace.  Reads run on pooled reader connections.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from labtrack.entities import (
    RUN_STATUSES,
    DatasetInput,
    Experiment,
    Metric,
    MetricSeries,
    Run,
    RunInfo,
)
from labtrack.errors import InvalidParameterValue, LabtrackError, ResourceAlreadyExists, ResourceDoesNotExist
from labtrack.store import metrics as metric_rows
from labtrack.store import schema as s
from labtrack.store import run_query, search
from labtrack.store.dialect import cached, raw_rows, upsert
from labtrack.store.downsample import downsample
from labtrack.store.engine import Engines, open_engines
from labtrack.store.experiment_race import ExperimentRace
from labtrack.store.loading import load_runs, run_info, runs_from_rows, runs_text_from_rows
from labtrack.store.names import generate_run_name
from labtrack.store.validation import (
    LIMITS,
    check_experiment_id,
    check_experiment_name,
    check_key,
    check_max_results,
    check_run_id,
    check_series,
    check_value_length,
    fit_value,
)
from labtrack.store.writer import Writer

T = TypeVar("T")
RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"


def now_ms() -> int:
    return int(time.time() * 1000)


def join_uri(base: str, *parts: str) -> str:
    base = base.rstrip("/")
    if base.endswith(":"):  # "mlflow-artifacts:" + "/0"
        return base + "/" + "/".join(parts)
    return "/".join([base, *parts])


class TrackingStore:
    """Experiments and runs on one database; the only code that writes it."""

    def __init__(self, url: str, default_artifact_root: str = "mlflow-artifacts:/") -> None:
        self.engines: Engines = open_engines(url)
        self.writer = Writer(self.engines.writer)
        self.default_artifact_root = default_artifact_root
        self.race = ExperimentRace()
        self._ensure_default_experiment()

    # -- plumbing ---------------------------------------------------------

    def read(self, fn: Callable[[Connection], T]) -> T:
        with self.engines.reader.connect() as conn:
            try:
                return fn(conn)
            finally:
                conn.rollback()

    def write(self, fn: Callable[[Connection], T]) -> T:
        return self.writer.run(fn)

    def close(self) -> None:
        self.writer.close()
        self.engines.dispose()

    def _ensure_default_experiment(self) -> None:
        def op(conn: Connection) -> None:
            if conn.execute(select(s.experiments.c.experiment_id).where(
                    s.experiments.c.experiment_id == 0)).first() is None:
                t = now_ms()
                stmt = upsert(conn, s.experiments).values(
                    experiment_id=0, name="Default", lifecycle_stage="active", creation_time=t,
                    last_update_time=t, artifact_location=join_uri(self.default_artifact_root, "0"),
                ).on_conflict_do_nothing()
                conn.execute(stmt)
        self.write(op)

    # -- experiments ------------------------------------------------------

    def create_experiment(self, name: Any, artifact_location: str | None = None,
                          tags: dict[str, str] | None = None) -> str:
        name = check_experiment_name(name)
        tags = self._check_experiment_tags(tags or {})

        def op(conn: Connection) -> str:
            by_name = select(s.experiments).where(s.experiments.c.name == name)
            existing = conn.execute(by_name).first()
            if existing is None:
                try:
                    with conn.begin_nested():
                        exp_id = self._insert_experiment(conn, name, artifact_location, tags)
                except IntegrityError:
                    # Another server process (--workers on PostgreSQL) committed the name meanwhile.
                    existing = conn.execute(by_name).first()
                    if existing is None:
                        raise
                else:
                    self.race.created(name)
                    return exp_id
            if self.race.owed(name, existing.creation_time or 0,
                              _same_create(conn, existing, artifact_location, tags)):
                return str(existing.experiment_id)  # a racing create: see experiment_race.py
            raise ResourceAlreadyExists(f"Experiment(name={name}) already exists.")
        return self.write(op)

    def _insert_experiment(self, conn: Connection, name: str, artifact_location: str | None,
                           tags: dict[str, str]) -> str:
        t = now_ms()
        exp_id = conn.execute(insert(s.experiments).values(
            name=name, artifact_location=artifact_location or "", lifecycle_stage="active",
            creation_time=t, last_update_time=t)).inserted_primary_key[0]
        if not artifact_location:
            conn.execute(update(s.experiments).where(s.experiments.c.experiment_id == exp_id)
                         .values(artifact_location=join_uri(self.default_artifact_root, str(exp_id))))
        if tags:
            conn.execute(insert(s.experiment_tags), [
                {"experiment_id": exp_id, "key": k, "value": v} for k, v in tags.items()])
        return str(exp_id)

    def _check_experiment_tags(self, tags: dict[str, str]) -> dict[str, str]:
        for k, v in tags.items():
            check_key("tag", k, LIMITS["experiment_tag_key"])
            check_value_length("tag", k, v, LIMITS["experiment_tag_value"])
        return tags

    def get_experiment(self, experiment_id: Any) -> Experiment:
        exp_id = check_experiment_id(experiment_id)
        return self.read(lambda conn: _experiment(conn, exp_id))

    def get_experiment_by_name(self, name: Any, *, caller_may_create: bool = False) -> Experiment:
        """The experiment named ``name``.

        ``caller_may_create``: the lookup is a client's, which may create the name
        next when it misses (mlflow's ``set_experiment``); a miss then counts for
        the race rule of ``experiment_race``.
        """
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue("Missing value for required parameter 'experiment_name'")

        def op(conn: Connection) -> Experiment:
            row = conn.execute(select(s.experiments.c.experiment_id).where(
                s.experiments.c.name == name)).first()
            if row is None:
                if caller_may_create:
                    self.race.missed(name)
                raise ResourceDoesNotExist(f"Could not find experiment with name '{name}'")
            return _experiment(conn, row[0])
        return self.read(op)

    def search_experiments(self, view_type: str = "ACTIVE_ONLY", max_results: Any = None,
                           filter_string: str | None = None, order_by: Sequence[str] | None = None,
                           page_token: str | None = None) -> tuple[list[Experiment], str | None]:
        limit = check_max_results(max_results, 1000, LIMITS["experiments_max_results"])
        offset = search.decode_page_token(page_token)
        conds = [*search.lifecycle(s.experiments.c.lifecycle_stage, view_type),
                 *search.experiment_conditions(filter_string)]
        order = search.experiment_order_by(list(order_by or []))

        def op(conn: Connection) -> tuple[list[Experiment], str | None]:
            ids = [r[0] for r in conn.execute(
                select(s.experiments.c.experiment_id).where(*conds).order_by(*order)
                .offset(offset).limit(limit + 1))]
            token = search.encode_page_token(offset + limit) if len(ids) > limit else None
            return [_experiment(conn, i) for i in ids[:limit]], token
        return self.read(op)

    def rename_experiment(self, experiment_id: Any, new_name: Any) -> None:
        exp_id = check_experiment_id(experiment_id)
        new_name = check_experiment_name(new_name)

        def op(conn: Connection) -> None:
            exp = _experiment(conn, exp_id)
            if exp.lifecycle_stage != "active":
                raise InvalidParameterValue("Cannot rename a non-active experiment.")
            clash = conn.execute(select(s.experiments.c.experiment_id).where(
                s.experiments.c.name == new_name, s.experiments.c.experiment_id != exp_id)).first()
            if clash is not None:
                raise ResourceAlreadyExists(f"Experiment '{new_name}' already exists.")
            conn.execute(update(s.experiments).where(s.experiments.c.experiment_id == exp_id)
                         .values(name=new_name, last_update_time=now_ms()))
        self.write(op)

    def delete_experiment(self, experiment_id: Any) -> None:
        exp_id = check_experiment_id(experiment_id)
        if exp_id == 0:
            raise InvalidParameterValue("Cannot delete the default experiment '0'.")

        def op(conn: Connection) -> None:
            _experiment(conn, exp_id)
            t = now_ms()
            conn.execute(update(s.experiments).where(s.experiments.c.experiment_id == exp_id)
                         .values(lifecycle_stage="deleted", last_update_time=t))
            conn.execute(update(s.runs).where(s.runs.c.experiment_id == exp_id,
                                              s.runs.c.lifecycle_stage == "active")
                         .values(lifecycle_stage="deleted", deleted_time=t, last_update_time=t))
        self.write(op)

    def restore_experiment(self, experiment_id: Any) -> None:
        exp_id = check_experiment_id(experiment_id)

        def op(conn: Connection) -> None:
            exp = _experiment(conn, exp_id)
            if exp.lifecycle_stage != "deleted":
                raise InvalidParameterValue(f"Cannot restore an active experiment '{exp_id}'.")
            t = now_ms()
            conn.execute(update(s.experiments).where(s.experiments.c.experiment_id == exp_id)
                         .values(lifecycle_stage="active", last_update_time=t))
            # Runs deleted together with the experiment come back with it.
            conn.execute(update(s.runs).where(s.runs.c.experiment_id == exp_id,
                                              s.runs.c.deleted_time == exp.last_update_time)
                         .values(lifecycle_stage="active", deleted_time=None, last_update_time=t))
        self.write(op)

    def set_experiment_tag(self, experiment_id: Any, key: Any, value: Any) -> None:
        exp_id = check_experiment_id(experiment_id)
        self._check_experiment_tags({check_key("tag", key, LIMITS["experiment_tag_key"]): _str("value", value)})

        def op(conn: Connection) -> None:
            if _experiment(conn, exp_id).lifecycle_stage != "active":
                raise InvalidParameterValue(f"The experiment {exp_id} must be in the 'active' state.")
            stmt = upsert(conn, s.experiment_tags).values(
                experiment_id=exp_id, key=key, value=value)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["experiment_id", "key"], set_={"value": stmt.excluded.value}))
        self.write(op)

    def delete_experiment_tag(self, experiment_id: Any, key: Any) -> None:
        exp_id = check_experiment_id(experiment_id)
        key = check_key("tag", key)

        def op(conn: Connection) -> None:
            _experiment(conn, exp_id)
            res = conn.execute(delete(s.experiment_tags).where(
                s.experiment_tags.c.experiment_id == exp_id, s.experiment_tags.c.key == key))
            if res.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag with name: {key} in experiment {exp_id}.")
        self.write(op)

    # -- runs ---------------------------------------------------------------

    def create_run(self, experiment_id: Any, user_id: str = "", start_time: int | None = None,
                   run_name: str | None = None, tags: dict[str, str] | None = None,
                   run_id: str | None = None) -> Run:
        """Create a RUNNING run.

        ``run_id`` is a client-chosen id (spool files carry one so that applying a
        record twice creates one run): when a run with that id exists, it is
        returned unchanged.
        """
        exp_id = check_experiment_id(experiment_id if experiment_id not in (None, "") else "0")
        if run_id is not None:
            run_id = check_run_id(run_id)
            if len(run_id) > 32:
                raise InvalidParameterValue(f"Invalid run ID: '{run_id[:80]}' (at most 32 characters)")
        tags = dict(tags or {})
        for k, v in tags.items():
            check_key("tag", k)
            tags[k] = fit_value("tag", k, v, "run_tag_value")
        tag_name = tags.get(RUN_NAME_TAG)
        if run_name and tag_name and run_name != tag_name:
            raise InvalidParameterValue(
                f"Both 'run_name' argument and '{RUN_NAME_TAG}' tag are specified, but with different "
                f"values (run_name='{run_name}', {RUN_NAME_TAG}='{tag_name}').")
        name = run_name or tag_name or generate_run_name()
        check_value_length("run name", "run_name", name, 250)
        tags[RUN_NAME_TAG] = name
        chosen = run_id is not None
        run_id = run_id or uuid.uuid4().hex
        start = start_time if start_time is not None else now_ms()

        def op(conn: Connection) -> Run:
            if chosen:
                existing = load_runs(conn, [run_id])
                if existing:
                    return existing[0]
            exp = _experiment(conn, exp_id)
            if exp.lifecycle_stage != "active":
                raise InvalidParameterValue(
                    f"The experiment {exp_id} must be in the 'active' state. "
                    f"Current state is {exp.lifecycle_stage}.")
            info = RunInfo(run_id=run_id, experiment_id=str(exp_id), run_name=name, user_id=user_id or "",
                           status="RUNNING", start_time=start, end_time=None,
                           artifact_uri=join_uri(exp.artifact_location, run_id, "artifacts"))
            conn.execute(insert(s.runs).values(
                run_uuid=run_id, experiment_id=exp_id, name=name, user_id=info.user_id, status="RUNNING",
                start_time=start, lifecycle_stage="active", artifact_uri=info.artifact_uri,
                last_update_time=now_ms()))
            conn.execute(insert(s.tags), [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags.items()])
            return Run(info=info, tags=tags)
        return self.write(op)

    def get_run(self, run_id: Any) -> Run:
        run_id = check_run_id(run_id)

        def op(conn: Connection) -> Run:
            runs = load_runs(conn, [run_id])
            if not runs:
                raise ResourceDoesNotExist(f"Run with id={run_id} not found")
            return runs[0]
        return self.read(op)

    def update_run(self, run_id: Any, status: str | None = None, end_time: int | None = None,
                   run_name: str | None = None) -> RunInfo:
        run_id = check_run_id(run_id)
        if status is not None and status not in RUN_STATUSES:
            raise InvalidParameterValue(f"Invalid run status: '{status}'")

        def op(conn: Connection) -> RunInfo:
            row = _active_run_row(conn, run_id)
            values: dict[str, Any] = {"last_update_time": now_ms()}
            if status is not None:
                values["status"] = status
            if end_time is not None:
                values["end_time"] = end_time
            if run_name:
                values["name"] = run_name
                _put_tags(conn, run_id, {RUN_NAME_TAG: run_name})
            conn.execute(update(s.runs).where(s.runs.c.run_uuid == run_id).values(**values))
            info = run_info(row)
            info.status = values.get("status", info.status)
            info.end_time = values.get("end_time", info.end_time)
            info.run_name = values.get("name", info.run_name)
            return info
        return self.write(op)

    def delete_run(self, run_id: Any) -> None:
        self._set_run_lifecycle(check_run_id(run_id), "deleted")

    def restore_run(self, run_id: Any) -> None:
        self._set_run_lifecycle(check_run_id(run_id), "active")

    def _set_run_lifecycle(self, run_id: str, stage: str) -> None:
        def op(conn: Connection) -> None:
            _run_row(conn, run_id)
            t = now_ms()
            conn.execute(update(s.runs).where(s.runs.c.run_uuid == run_id).values(
                lifecycle_stage=stage, deleted_time=t if stage == "deleted" else None, last_update_time=t))
        self.write(op)

    # -- logging ----------------------------------------------------------

    def log_batch(self, run_id: Any, metrics: Sequence[Metric] = (), params: Sequence[tuple[str, str]] = (),
                  tags: Sequence[tuple[str, str]] = (), series: Sequence[MetricSeries] = ()) -> None:
        """Log metrics, params and tags atomically: all of them or none.

        ``series`` is the bulk form of ``metrics`` (labtrack's ``runs/log-series``),
        with its own, larger limit on points.
        """
        self.write(self.log_batch_op(run_id, metrics, params, tags, series))

    def log_batch_op(self, run_id: Any, metrics: Sequence[Metric] = (), params: Sequence[tuple[str, str]] = (),
                     tags: Sequence[tuple[str, str]] = (),
                     series: Sequence[MetricSeries] = ()) -> Callable[[Connection], None]:
        """``log_batch``'s checks, done now, and its write as an operation for ``writer.submit``
        (the spool ingest checks its next group while the writer stores the previous one)."""
        run_id = check_run_id(run_id)
        params, tags = _check_batch(metrics, params, tags)
        series = check_series(series)
        param_map: dict[str, str] = {}
        for k, v in params:
            if k in param_map and param_map[k] != v:
                raise InvalidParameterValue(
                    f"Duplicate parameter keys have been submitted: '{k}' with different values.")
            param_map[k] = v

        def op(conn: Connection) -> None:
            _check_active_run(conn, run_id)
            if param_map:
                _put_params(conn, run_id, param_map)
            if tags:
                _put_tags(conn, run_id, dict(tags))
            if metrics:
                metric_rows.insert_metrics(conn, run_id, metrics)
            if series:
                metric_rows.insert_series(conn, run_id, series)
        return op

    @staticmethod
    def run_active_now(conn: Connection, run_id: str) -> bool:
        """Whether ``run_id`` is an active run, read on SQLite's own connection outside any
        transaction, for a caller that holds the idle writer's connection (server/early_answer.py)."""
        sql = _run_state_sql(conn).string
        row = conn.connection.driver_connection.execute(sql, (run_id,)).fetchone()
        return row is not None and row[0] == "active"

    def fold_latest(self, latest: dict[str, Sequence[MetricSeries]]) -> list[str]:
        """Fold points into their runs' latest values (and min/max) only, not their history,
        in one transaction; return the runs skipped because they are missing or not active.

        For the spool ingest's preview of points it will store in full later: a latest
        value is the largest (step, timestamp, value), so folding some points now and all
        of them later ends where folding all of them once would.
        """
        def op(conn: Connection) -> list[str]:
            skipped = []
            for run_id, series in latest.items():
                try:
                    _check_active_run(conn, run_id)
                except LabtrackError:
                    skipped.append(run_id)
                    continue
                metric_rows._update_latest(conn, run_id, [s_ for s_ in series if s_.values])
            return skipped
        return self.write(op)

    def refold_latest(self, run_id: str, keys: Sequence[str]) -> None:
        """Recompute the latest values of ``keys`` from the stored history alone (after the spool
        ingest rejected a record whose points its preview may have folded already)."""
        lm = s.latest_metrics

        def op(conn: Connection) -> None:
            for key in set(keys):
                conn.execute(delete(lm).where(lm.c.run_uuid == run_id, lm.c.key == key))
                offset, page = 0, 100_000
                while True:
                    rows = metric_rows.history_rows(conn, run_id, key, offset, page)
                    if rows:
                        metric_rows._update_latest(conn, run_id, [MetricSeries(
                            key, [r[0] for r in rows], [r[1] for r in rows],
                            [float("nan") if r[3] else r[2] for r in rows])])
                    if len(rows) < page:
                        break
                    offset += page
        self.write(op)

    def delete_tag(self, run_id: Any, key: Any) -> None:
        run_id = check_run_id(run_id)
        key = check_key("tag", key)

        def op(conn: Connection) -> None:
            _active_run_row(conn, run_id)
            res = conn.execute(delete(s.tags).where(s.tags.c.run_uuid == run_id, s.tags.c.key == key))
            if res.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag with name: {key} in run with id {run_id}")
        self.write(op)

    def log_inputs(self, run_id: Any, datasets: Sequence[DatasetInput] = (),
                   models: Sequence[str] = ()) -> None:
        run_id = check_run_id(run_id)
        if len(datasets) > LIMITS["log_inputs_datasets"]:
            raise InvalidParameterValue(
                f"A batch of {len(datasets)} datasets exceeds the limit of {LIMITS['log_inputs_datasets']}")
        for d in datasets:
            _check_dataset(d)

        def op(conn: Connection) -> None:
            row = _active_run_row(conn, run_id)
            for d in datasets:
                ds_id = _dataset_uuid(conn, row.experiment_id, d)
                conn.execute(upsert(conn, s.run_inputs).values(
                    run_uuid=run_id, dataset_uuid=ds_id).on_conflict_do_nothing())
                for k, v in d.tags.items():
                    stmt = upsert(conn, s.input_tags).values(
                        run_uuid=run_id, dataset_uuid=ds_id, key=k, value=v)
                    conn.execute(stmt.on_conflict_do_update(
                        index_elements=["run_uuid", "dataset_uuid", "key"], set_={"value": stmt.excluded.value}))
            for model_id in models:
                conn.execute(upsert(conn, s.run_model_inputs).values(
                    run_uuid=run_id, model_id=model_id).on_conflict_do_nothing())
        self.write(op)

    def log_outputs(self, run_id: Any, models: Sequence[tuple[str, int]]) -> None:
        run_id = check_run_id(run_id)

        def op(conn: Connection) -> None:
            _active_run_row(conn, run_id)
            for model_id, step in models:
                if conn.execute(select(s.logged_models.c.model_id).where(
                        s.logged_models.c.model_id == model_id)).first() is None:
                    raise ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")
                stmt = upsert(conn, s.run_model_outputs).values(
                    run_uuid=run_id, model_id=model_id, step=step)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["run_uuid", "model_id"], set_={"step": stmt.excluded.step}))
        self.write(op)

    # -- metric reads -------------------------------------------------------

    def get_metric_history(self, run_id: Any, key: Any, max_results: Any = None,
                           page_token: str | None = None) -> tuple[list[Metric], str | None]:
        rows, token = self.get_metric_history_rows(run_id, key, max_results, page_token)
        return [metric_rows.to_metric(key, r) for r in rows], token

    def get_metric_history_rows(self, run_id: Any, key: Any, max_results: Any = None,
                                page_token: str | None = None) -> tuple[list[Any], str | None]:
        """One page of a history as rows of ``metrics.HISTORY_FIELDS`` (no objects per point)."""
        run_id = check_run_id(run_id)
        if not isinstance(key, str) or not key:
            raise InvalidParameterValue("Missing value for required parameter 'metric_key'")
        limit = check_max_results(max_results, 25000, 10**9)
        offset = search.decode_page_token(page_token)

        def op(conn: Connection) -> tuple[list[Any], str | None]:
            _run_row(conn, run_id)
            rows = metric_rows.history_rows(conn, run_id, key, offset, limit + 1)
            token = search.encode_page_token(offset + limit) if len(rows) > limit else None
            return rows[:limit], token
        return self.read(op)

    def metric_history_slices(self, run_id: Any, key: Any, max_results: Any = None, page_token: str | None = None,
                              slice_rows: int = 25000) -> Iterator[list[Any] | str | None]:
        """``get_metric_history_rows``'s page in slices of at most ``slice_rows`` rows.

        Yields the slices (lists of rows) in order, then the page's next token (None
        when the page holds the history's last point), all read in one transaction:
        the same points as the page read at once, while only one slice at a time is
        held in memory.  Bad input raises here, before the first slice.  Close the
        iterator when not reading it to the end: it holds a reader connection.
        """
        run_id = check_run_id(run_id)
        if not isinstance(key, str) or not key:
            raise InvalidParameterValue("Missing value for required parameter 'metric_key'")
        limit = check_max_results(max_results, 25000, 10**9)
        offset = search.decode_page_token(page_token)

        def slices() -> Iterator[list[Any] | str | None]:
            with self.engines.reader.connect() as conn:
                try:
                    _run_row(conn, run_id)
                    done = 0
                    while True:
                        n = min(slice_rows, limit - done)
                        rows = metric_rows.history_rows(conn, run_id, key, offset + done, n + 1)
                        more = len(rows) > n
                        done += min(n, len(rows))
                        yield rows[:n]
                        if not more:
                            yield None
                            return
                        if done >= limit:
                            yield search.encode_page_token(offset + limit)
                            return
                finally:
                    conn.rollback()
        return slices()

    def get_metric_history_bulk_interval(self, run_ids: Sequence[str], key: str, start_step: int | None,
                                         end_step: int | None, max_results: int) -> list[Metric]:
        ids = [check_run_id(r) for r in run_ids]
        if not ids:
            raise InvalidParameterValue("Missing value for required parameter 'run_ids'")
        if len(ids) > 100:
            raise InvalidParameterValue("At most 100 run IDs may be given.")
        if not 1 <= max_results <= 2500:
            raise InvalidParameterValue("max_results must be between 1 and 2500")
        return self.read(lambda conn: metric_rows.history_interval(conn, ids, key, start_step, end_step,
                                                                   max_results))

    def downsampled_history(self, run_id: Any, key: Any, max_points: int, min_step: int | None = None,
                            max_step: int | None = None) -> tuple[list[dict[str, Any]], int]:
        run_id = check_run_id(run_id)
        if not isinstance(key, str) or not key:
            raise InvalidParameterValue("Missing value for required parameter 'metric_key'")
        if not 2 <= max_points <= 100000:
            raise InvalidParameterValue("max_points must be between 2 and 100000")

        def op(conn: Connection) -> tuple[list[dict[str, Any]], int]:
            _run_row(conn, run_id)
            return downsample(conn, run_id, key, max_points, min_step, max_step)
        return self.read(op)

    # -- search -------------------------------------------------------------

    def search_runs(self, experiment_ids: Sequence[Any], filter_string: str | None = None,
                    view_type: str = "ACTIVE_ONLY", max_results: Any = None,
                    order_by: Sequence[str] | None = None,
                    page_token: str | None = None) -> tuple[list[Run], str | None]:
        return self._search_page(runs_from_rows, experiment_ids, filter_string, view_type, max_results, order_by,
                                 page_token)

    def search_runs_text(self, experiment_ids: Sequence[Any], filter_string: str | None = None,
                         view_type: str = "ACTIVE_ONLY", max_results: Any = None,
                         order_by: Sequence[str] | None = None,
                         page_token: str | None = None) -> tuple[list[str], str | None]:
        """``search_runs`` with each run as its JSON text (``Run.to_json_text``), made without Run objects."""
        return self._search_page(runs_text_from_rows, experiment_ids, filter_string, view_type, max_results,
                                 order_by, page_token)

    def _search_page(self, load: Callable[[Connection, Sequence[tuple[Any, ...]]], list[T]],
                     experiment_ids: Sequence[Any], filter_string: str | None, view_type: str, max_results: Any,
                     order_by: Sequence[str] | None, page_token: str | None) -> tuple[list[T], str | None]:
        exp_ids = [check_experiment_id(e) for e in experiment_ids]
        limit = check_max_results(max_results, 1000, LIMITS["runs_max_results"])
        offset = search.decode_page_token(page_token)
        order = list(order_by or [])

        def op(conn: Connection) -> tuple[list[T], str | None]:
            rows = run_query.page_rows(conn, exp_ids, filter_string, order, view_type, offset, limit + 1)
            token = search.encode_page_token(offset + limit) if len(rows) > limit else None
            return load(conn, rows[:limit]), token
        return self.read(op)

    def search_datasets(self, experiment_ids: Sequence[Any]) -> list[dict[str, str]]:
        """The UI's dataset summaries: (experiment, name, digest, context) triples."""
        exp_ids = [check_experiment_id(e) for e in experiment_ids]
        if len(exp_ids) > 20:
            raise InvalidParameterValue("At most 20 experiment IDs may be given.")
        ds, ri, it = s.datasets, s.run_inputs, s.input_tags

        def op(conn: Connection) -> list[dict[str, str]]:
            rows = conn.execute(
                select(ds.c.experiment_id, ds.c.name, ds.c.digest, it.c.value).distinct()
                .join(ri, ri.c.dataset_uuid == ds.c.dataset_uuid)
                .outerjoin(it, (it.c.dataset_uuid == ds.c.dataset_uuid) & (it.c.run_uuid == ri.c.run_uuid)
                           & (it.c.key == "mlflow.data.context"))
                .where(ds.c.experiment_id.in_(exp_ids)).order_by(ds.c.name, ds.c.digest))
            out = []
            for exp_id, name, digest, context in rows:
                item = {"experiment_id": str(exp_id), "name": name, "digest": digest}
                if context:
                    item["context"] = context
                out.append(item)
            return out
        return self.read(op)

    def experiment_activity(self) -> list[dict[str, Any]]:
        """Per experiment: its active runs, how many are RUNNING, and the last start or end of any.

        One grouped scan of the runs table, for the experiments list (MLflow's own
        ``last_update_time`` only moves when the experiment itself changes).
        """
        def op(conn: Connection) -> list[dict[str, Any]]:
            r = s.runs.c
            last = func.max(func.coalesce(r.end_time, r.start_time))
            running = func.sum(case((r.status == "RUNNING", 1), else_=0))
            rows = conn.execute(select(r.experiment_id, func.count(), running, last)
                                .where(r.lifecycle_stage == "active").group_by(r.experiment_id))
            return [{"experiment_id": str(e), "runs": int(n), "running": int(m or 0),
                     "last_activity": int(t) if t is not None else None} for e, n, m, t in rows]
        return self.read(op)

    def count_runs(self) -> dict[str, int]:
        def op(conn: Connection) -> dict[str, int]:
            rows = conn.execute(select(s.runs.c.status, func.count()).where(
                s.runs.c.lifecycle_stage == "active").group_by(s.runs.c.status))
            return {status: n for status, n in rows}
        return self.read(op)


# -- helpers shared by the operations above ----------------------------------

def _str(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{field}': expected a string")
    return value


def _experiment(conn: Connection, exp_id: int) -> Experiment:
    row = conn.execute(select(s.experiments).where(s.experiments.c.experiment_id == exp_id)).first()
    if row is None:
        raise ResourceDoesNotExist(f"No Experiment with id={exp_id} exists")
    tags = {r.key: r.value for r in conn.execute(
        select(s.experiment_tags).where(s.experiment_tags.c.experiment_id == exp_id))}
    return Experiment(experiment_id=str(row.experiment_id), name=row.name,
                      artifact_location=row.artifact_location, lifecycle_stage=row.lifecycle_stage,
                      creation_time=row.creation_time, last_update_time=row.last_update_time, tags=tags)


def _same_create(conn: Connection, existing: Any, artifact_location: str | None,
                 tags: dict[str, str]) -> bool:
    """Whether a create of ``existing``'s name asks for nothing it lacks (experiment_race rule 1)."""
    if existing.lifecycle_stage != "active":
        return False
    if artifact_location and artifact_location != existing.artifact_location:
        return False
    if not tags:
        return True
    have = {r.key: r.value for r in conn.execute(
        select(s.experiment_tags).where(s.experiment_tags.c.experiment_id == existing.experiment_id))}
    return all(have.get(k) == v for k, v in tags.items())


# Built once: every logging request runs these, and building costs more than running.
_RUN_ROW = select(s.runs).where(s.runs.c.run_uuid == bindparam("run_id"))
_PARAMS_OF = select(s.params).where(s.params.c.run_uuid == bindparam("run_id"),
                                    s.params.c.key.in_(bindparam("keys", expanding=True)))


def _run_row(conn: Connection, run_id: str) -> Any:
    row = conn.execute(_RUN_ROW, {"run_id": run_id}).first()
    if row is None:
        raise ResourceDoesNotExist(f"Run with id={run_id} not found")
    return row


def _active_run_row(conn: Connection, run_id: str) -> Any:
    row = _run_row(conn, run_id)
    if row.lifecycle_stage != "active":
        raise InvalidParameterValue(
            f"The run {run_id} must be in the 'active' state. Current state is {row.lifecycle_stage}.")
    return row


# Every logging request checks its run: on the DBAPI cursor, where
# SQLAlchemy's execution of this one-row statement cost ten times SQLite's own
# work.
_RUN_STATE = select(s.runs.c.lifecycle_stage).where(
    s.runs.c.run_uuid == bindparam("run_id"))


def _run_state_sql(conn: Connection) -> Any:
    return cached(conn, "run_state_sql", lambda c: _RUN_STATE.compile(dialect=c.dialect))


def _check_active_run(conn: Connection, run_id: str) -> None:
    """Nothing for an active run; ``_active_run_row``'s errors otherwise."""
    rows = raw_rows(conn, _run_state_sql(conn), {"run_id": run_id})
    if not (rows and rows[0][0] == "active"):
        _active_run_row(conn, run_id)


def _check_batch(metrics: Sequence[Metric], params: Sequence[tuple[str, str]],
                 tags: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Raise on what MLflow refuses; the params and tags with values cut where MLflow cuts them."""
    if len(metrics) > LIMITS["batch_metrics"]:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {LIMITS['batch_metrics']} metrics. "
            f"Got {len(metrics)} metrics.")
    if len(params) > LIMITS["batch_params"]:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {LIMITS['batch_params']} params. Got {len(params)} params.")
    if len(tags) > LIMITS["batch_tags"]:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {LIMITS['batch_tags']} tags. Got {len(tags)} tags.")
    total = len(metrics) + len(params) + len(tags)
    if total > LIMITS["batch_total"]:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {LIMITS['batch_total']} metrics, params and tags "
            f"in total. Got {total}.")
    checked: set[str] = set()  # a batch repeats a few keys many times; the check is pure
    for m in metrics:
        if not (type(m.key) is str and m.key in checked):
            check_key("metric", m.key)
            checked.add(m.key)
        if m.timestamp < 0:
            raise InvalidParameterValue(f"Metric '{m.key}' has a negative timestamp {m.timestamp}.")
    fitted_params = [(check_key("param", k), fit_value("param", k, _str("value", v), "param_value"))
                     for k, v in params]
    fitted_tags = [(check_key("tag", k), fit_value("tag", k, _str("value", v), "run_tag_value"))
                   for k, v in tags]
    return fitted_params, fitted_tags


def _put_params(conn: Connection, run_id: str, params: dict[str, str]) -> None:
    existing = _stored_params(conn, run_id, params)
    new = [{"run_uuid": run_id, "key": k, "value": v} for k, v in params.items() if k not in existing]
    if new:
        conn.execute(upsert(conn, s.params).on_conflict_do_nothing(), new)
        if conn.dialect.name != "sqlite":
            # Another server process (--workers on PostgreSQL) may have logged one of these keys
            # since we looked: its first value won by the primary key; compare against it.
            _stored_params(conn, run_id, params)


def _stored_params(conn: Connection, run_id: str, params: dict[str, str]) -> dict[str, str]:
    """The run's stored values of ``params``' keys; refuses a value that differs from one stored."""
    stored = {r.key: r.value for r in conn.execute(_PARAMS_OF, {"run_id": run_id, "keys": list(params)})}
    for k, v in params.items():
        if k in stored and stored[k] != v:
            raise InvalidParameterValue(
                f"Changing param values is not allowed. Param with key='{k}' was already logged with "
                f"value='{stored[k]}' for run ID='{run_id}'. Attempted logging new value '{v}'.")
    return stored


def _upsert_tags(conn: Connection) -> Any:
    stmt = upsert(conn, s.tags)
    return stmt.on_conflict_do_update(index_elements=["run_uuid", "key"], set_={"value": stmt.excluded.value})


def _put_tags(conn: Connection, run_id: str, tags: dict[str, str]) -> None:
    conn.execute(cached(conn, "upsert_tags", _upsert_tags),
                 [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags.items()])
    if RUN_NAME_TAG in tags:  # the tag and the run's name stay in sync both ways
        conn.execute(update(s.runs).where(s.runs.c.run_uuid == run_id).values(name=tags[RUN_NAME_TAG]))


def _check_dataset(d: DatasetInput) -> None:
    for field, value, limit in (("name", d.name, "dataset_name"), ("digest", d.digest, "dataset_digest"),
                                ("source", d.source, "dataset_source"), ("schema", d.schema, "dataset_schema"),
                                ("profile", d.profile, "dataset_profile")):
        if value is not None and len(value) > LIMITS[limit]:
            raise InvalidParameterValue(
                f"Dataset {field} had length {len(value)}, which exceeded length limit of {LIMITS[limit]}")
    if not d.name or not d.digest:
        raise InvalidParameterValue("A dataset needs a name and a digest")
    for k, v in d.tags.items():
        if len(k) > LIMITS["input_tag_key"] or len(v) > LIMITS["input_tag_value"]:
            raise InvalidParameterValue(f"Input tag '{k[:50]}' exceeds the key/value length limits (255/500)")


def _dataset_uuid(conn: Connection, exp_id: int, d: DatasetInput) -> str:
    ds = s.datasets
    row = conn.execute(select(ds.c.dataset_uuid).where(
        ds.c.experiment_id == exp_id, ds.c.name == d.name, ds.c.digest == d.digest)).first()
    if row is not None:
        return row[0]
    ds_id = uuid.uuid4().hex
    conn.execute(insert(ds).values(dataset_uuid=ds_id, experiment_id=exp_id, name=d.name, digest=d.digest,
                                   source_type=d.source_type, source=d.source, schema=d.schema,
                                   profile=d.profile))
    return ds_id

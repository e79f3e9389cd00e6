"""MLflow 3 logged models: what ``mlflow.<flavor>.log_model`` creates and finds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from labtrack.entities import LOGGED_MODEL_STATUSES, LoggedModel, Metric
from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist
from labtrack.store import schema as s
from labtrack.store import search
from labtrack.store.dialect import upsert
from labtrack.store.loading import metric_value
from labtrack.store.tracking import TrackingStore, _experiment, join_uri, now_ms
from labtrack.store.validation import LIMITS, check_experiment_id, check_key, check_max_results


def _status(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3:
        return LOGGED_MODEL_STATUSES[value - 1]
    if isinstance(value, str):
        name = value if value.startswith("LOGGED_MODEL_") else "LOGGED_MODEL_" + value
        if name in LOGGED_MODEL_STATUSES:
            return name
    raise InvalidParameterValue(f"Invalid logged model status: {value!r}")


class LoggedModelStore:
    """Logged models live beside runs in the same database and writer."""

    def __init__(self, tracking: TrackingStore) -> None:
        self.t = tracking

    def create(self, experiment_id: Any, name: str | None = None, model_type: str | None = None,
               source_run_id: str | None = None, params: dict[str, str] | None = None,
               tags: dict[str, str] | None = None) -> LoggedModel:
        exp_id = check_experiment_id(experiment_id)
        params, tags = dict(params or {}), dict(tags or {})
        if len(params) > LIMITS["logged_model_params"]:
            raise InvalidParameterValue(f"At most {LIMITS['logged_model_params']} params per request")
        for k in list(params) + list(tags):
            check_key("param or tag", k)
        model_id = f"m-{uuid.uuid4().hex}"
        name = name or f"model-{uuid.uuid4().hex[:8]}"

        def op(conn: Connection) -> LoggedModel:
            exp = _experiment(conn, exp_id)
            if exp.lifecycle_stage != "active":
                raise InvalidParameterValue(f"The experiment {exp_id} must be in the 'active' state.")
            if source_run_id is not None and conn.execute(select(s.runs.c.run_uuid).where(
                    s.runs.c.run_uuid == source_run_id)).first() is None:
                raise ResourceDoesNotExist(f"Run with id={source_run_id} not found")
            t = now_ms()
            conn.execute(insert(s.logged_models).values(
                model_id=model_id, experiment_id=exp_id, name=name,
                artifact_location=join_uri(exp.artifact_location, "models", model_id, "artifacts"),
                creation_timestamp_ms=t, last_updated_timestamp_ms=t, status="LOGGED_MODEL_PENDING",
                lifecycle_stage="active", model_type=model_type, source_run_id=source_run_id))
            if params:
                conn.execute(insert(s.logged_model_params),
                             [{"model_id": model_id, "key": k, "value": v} for k, v in params.items()])
            if tags:
                conn.execute(insert(s.logged_model_tags),
                             [{"model_id": model_id, "key": k, "value": v} for k, v in tags.items()])
            return _load(conn, model_id)
        return self.t.write(op)

    def get(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self.t.read(lambda conn: _load(conn, model_id, allow_deleted))

    def finalize(self, model_id: str, status: Any) -> LoggedModel:
        st = _status(status)

        def op(conn: Connection) -> LoggedModel:
            _load(conn, model_id)
            conn.execute(update(s.logged_models).where(s.logged_models.c.model_id == model_id)
                         .values(status=st, last_updated_timestamp_ms=now_ms()))
            return _load(conn, model_id)
        return self.t.write(op)

    def delete(self, model_id: str) -> None:
        def op(conn: Connection) -> None:
            _load(conn, model_id)
            conn.execute(update(s.logged_models).where(s.logged_models.c.model_id == model_id)
                         .values(lifecycle_stage="deleted", last_updated_timestamp_ms=now_ms()))
        self.t.write(op)

    def set_tags(self, model_id: str, tags: dict[str, str]) -> None:
        self._put_key_values(s.logged_model_tags, "tag", model_id, tags)

    def _put_key_values(self, table: Any, kind: str, model_id: str, items: dict[str, str]) -> None:
        """Insert or overwrite a model's tags or params (one statement, after validation)."""
        for k in items:
            check_key(kind, k)

        def op(conn: Connection) -> None:
            _load(conn, model_id)
            stmt = upsert(conn, table)
            conn.execute(stmt.on_conflict_do_update(index_elements=["model_id", "key"],
                                                    set_={"value": stmt.excluded.value}),
                         [{"model_id": model_id, "key": k, "value": v} for k, v in items.items()])
        if items:
            self.t.write(op)

    def delete_tag(self, model_id: str, key: str) -> None:
        def op(conn: Connection) -> None:
            _load(conn, model_id)
            res = conn.execute(delete(s.logged_model_tags).where(
                s.logged_model_tags.c.model_id == model_id, s.logged_model_tags.c.key == key))
            if res.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag with key '{key}' on logged model '{model_id}'")
        self.t.write(op)

    def log_params(self, model_id: str, params: dict[str, str]) -> None:
        self._put_key_values(s.logged_model_params, "param", model_id, params)

    def search(self, experiment_ids: Sequence[Any], filter_string: str | None = None,
               max_results: Any = None, order_by: Sequence[dict[str, Any]] | None = None,
               page_token: str | None = None) -> tuple[list[LoggedModel], str | None]:
        exp_ids = [check_experiment_id(e) for e in experiment_ids]
        limit = check_max_results(max_results, 100, 50000)
        offset = search.decode_page_token(page_token)
        lm = s.logged_models
        conds = [lm.c.experiment_id.in_(exp_ids), lm.c.lifecycle_stage == "active",
                 *search.logged_model_conditions(filter_string)]
        order = search.logged_model_order_by(list(order_by or []))

        def op(conn: Connection) -> tuple[list[LoggedModel], str | None]:
            ids = [r[0] for r in conn.execute(
                select(lm.c.model_id).where(*conds).order_by(*order).offset(offset).limit(limit + 1))]
            token = search.encode_page_token(offset + limit) if len(ids) > limit else None
            return [_load(conn, i) for i in ids[:limit]], token
        return self.t.read(op)


def _load(conn: Connection, model_id: str, allow_deleted: bool = False) -> LoggedModel:
    row = conn.execute(select(s.logged_models).where(s.logged_models.c.model_id == model_id)).first()
    if row is None or (row.lifecycle_stage != "active" and not allow_deleted):
        raise ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")
    params = {r.key: r.value for r in conn.execute(
        select(s.logged_model_params).where(s.logged_model_params.c.model_id == model_id))}
    tags = {r.key: r.value for r in conn.execute(
        select(s.logged_model_tags).where(s.logged_model_tags.c.model_id == model_id))}
    lmm = s.logged_model_metrics
    metrics = [Metric(key=r.key, value=metric_value(r.value, r.is_nan), timestamp=r.timestamp, step=r.step,
                      run_id=r.run_uuid, model_id=model_id, dataset_name=r.dataset_name,
                      dataset_digest=r.dataset_digest)
               for r in conn.execute(select(lmm).where(lmm.c.model_id == model_id).order_by(lmm.c.key, lmm.c.step))]
    return LoggedModel(
        model_id=row.model_id, experiment_id=str(row.experiment_id), name=row.name,
        artifact_uri=row.artifact_location, creation_timestamp_ms=row.creation_timestamp_ms,
        last_updated_timestamp_ms=row.last_updated_timestamp_ms, status=row.status,
        model_type=row.model_type, source_run_id=row.source_run_id, status_message=row.status_message,
        tags=tags, params=params, metrics=metrics)

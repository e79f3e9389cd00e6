"""Evaluation datasets (``mlflow.genai.datasets``): named sets of records for ``mlflow.genai.evaluate``.

A record is its inputs plus optional outputs, expectations, tags and source.
Records are keyed by a hash of their inputs: upserting a record whose inputs
are already in the dataset merges into it (expectations and tags are merged,
outputs replaced), as MLflow's SQL store does.  Inputs, outputs and
expectations are kept as the JSON text the client sent and returned as it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist
from labtrack.store import schema as s
from labtrack.store import search
from labtrack.store.dialect import upsert
from labtrack.store.search_syntax import parse_filter, parse_order
from labtrack.store.tracking import TrackingStore, now_ms
from labtrack.store.validation import check_experiment_id, check_max_results

USER_TAG = "mlflow.user"


def _digest(name: str, t: int) -> str:
    return hashlib.sha256(f"{name}:{t}".encode()).hexdigest()[:8]


def input_hash(inputs: Any) -> str:
    """The key records merge on: a hash of their inputs (MLflow's SQL store computes the same)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def json_text(value: Any) -> str | None:
    """A value as the JSON text a column keeps (None stays NULL)."""
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _tags_of(value: Any) -> dict[str, Any]:
    """Tags as the client sends them: a JSON object, or its text."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidParameterValue("'tags' must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidParameterValue("'tags' must be a JSON object")
    return value


class EvalDatasetStore:
    """Evaluation datasets on the tracking store's database and writer."""

    def __init__(self, tracking: TrackingStore) -> None:
        self.t = tracking

    def create(self, name: Any, tags: Any = None, experiment_ids: Sequence[Any] = ()) -> dict[str, Any]:
        if not isinstance(name, str) or not name.strip():
            raise InvalidParameterValue("Missing value for required parameter 'name'")
        tag_dict = _tags_of(tags)
        exp_ids = [check_experiment_id(e) for e in experiment_ids]
        dataset_id = "d-" + uuid.uuid4().hex
        t = now_ms()
        user = tag_dict.get(USER_TAG)

        def op(conn: Connection) -> dict[str, Any]:
            for e in exp_ids:
                if conn.execute(select(s.experiments.c.experiment_id).where(
                        s.experiments.c.experiment_id == e)).first() is None:
                    raise ResourceDoesNotExist(f"No Experiment with id={e} exists")
            conn.execute(insert(s.eval_datasets).values(
                dataset_id=dataset_id, name=name, digest=_digest(name, t), created_time=t, last_update_time=t,
                created_by=user, last_updated_by=user, tags=json_text(tag_dict) if tag_dict else None))
            if exp_ids:
                conn.execute(insert(s.eval_dataset_experiments),
                             [{"dataset_id": dataset_id, "experiment_id": e} for e in dict.fromkeys(exp_ids)])
            return _dataset(conn, dataset_id)
        return self.t.write(op)

    def get(self, dataset_id: str) -> dict[str, Any]:
        return self.t.read(lambda conn: _dataset(conn, dataset_id))

    def delete(self, dataset_id: str) -> None:
        def op(conn: Connection) -> None:
            _dataset(conn, dataset_id)
            for table in (s.eval_dataset_records, s.eval_dataset_experiments, s.eval_datasets):
                conn.execute(delete(table).where(table.c.dataset_id == dataset_id))
        self.t.write(op)

    def search(self, experiment_ids: Sequence[Any] = (), filter_string: str | None = None, max_results: Any = None,
               order_by: Sequence[str] = (), page_token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        d = s.eval_datasets
        conds: list[Any] = []
        exp_ids = [check_experiment_id(e) for e in experiment_ids]
        if exp_ids:
            conds.append(d.c.dataset_id.in_(select(s.eval_dataset_experiments.c.dataset_id).where(
                s.eval_dataset_experiments.c.experiment_id.in_(exp_ids))))
        columns = {"name": d.c.name, "dataset_id": d.c.dataset_id, "created_by": d.c.created_by,
                   "last_updated_by": d.c.last_updated_by, "created_time": d.c.created_time,
                   "last_update_time": d.c.last_update_time}
        for c in parse_filter(filter_string):
            column = columns.get(c.key) if c.entity == "attribute" else None
            if column is None:
                raise c.fail(f"datasets can be filtered by {', '.join(sorted(columns))}")
            ops = {"=": column.__eq__, "!=": column.__ne__, ">": column.__gt__, ">=": column.__ge__,
                   "<": column.__lt__, "<=": column.__le__}
            if c.op == "LIKE":
                conds.append(column.like(c.value))
            elif c.op == "ILIKE":
                conds.append(column.ilike(c.value))
            elif c.op in ops:
                conds.append(ops[c.op](c.value))
            else:
                raise c.fail(f"operator {c.op} is not supported for datasets")
        order = []
        for entry in order_by or []:
            o = parse_order(entry)
            column = columns.get(o.key) if o.entity == "attribute" else None
            if column is None:
                raise InvalidParameterValue(f"Invalid order_by {entry!r} for datasets")
            order.append(column.asc() if o.ascending else column.desc())
        order += [d.c.created_time.desc(), d.c.dataset_id]
        limit = check_max_results(max_results, 1000, 50000)
        offset = search.decode_page_token(page_token)

        def op(conn: Connection) -> tuple[list[dict[str, Any]], str | None]:
            ids = [r[0] for r in conn.execute(select(d.c.dataset_id).where(*conds).order_by(*order)
                                              .offset(offset).limit(limit + 1))]
            token = search.encode_page_token(offset + limit) if len(ids) > limit else None
            return [_dataset(conn, i) for i in ids[:limit]], token
        return self.t.read(op)

    def set_tags(self, dataset_id: str, tags: Any) -> None:
        new = _tags_of(tags)

        def op(conn: Connection) -> None:
            current = _dataset(conn, dataset_id)
            merged = {**json.loads(current.get("tags") or "{}"), **new}
            conn.execute(update(s.eval_datasets).where(s.eval_datasets.c.dataset_id == dataset_id)
                         .values(tags=json_text(merged), last_update_time=now_ms()))
        self.t.write(op)

    def delete_tag(self, dataset_id: str, key: str) -> None:
        def op(conn: Connection) -> None:
            current = json.loads(_dataset(conn, dataset_id).get("tags") or "{}")
            current.pop(key, None)
            conn.execute(update(s.eval_datasets).where(s.eval_datasets.c.dataset_id == dataset_id)
                         .values(tags=json_text(current) if current else None, last_update_time=now_ms()))
        self.t.write(op)

    def experiment_ids(self, dataset_id: str) -> list[str]:
        def op(conn: Connection) -> list[str]:
            _dataset(conn, dataset_id)
            return _experiments(conn, dataset_id)
        return self.t.read(op)

    def link_experiments(self, dataset_id: str, experiment_ids: Sequence[Any], add: bool) -> dict[str, Any]:
        exp_ids = [check_experiment_id(e) for e in experiment_ids]

        def op(conn: Connection) -> dict[str, Any]:
            _dataset(conn, dataset_id)
            link = s.eval_dataset_experiments
            if add and exp_ids:
                conn.execute(upsert(conn, link).on_conflict_do_nothing(),
                             [{"dataset_id": dataset_id, "experiment_id": e} for e in dict.fromkeys(exp_ids)])
            elif exp_ids:
                conn.execute(delete(link).where(link.c.dataset_id == dataset_id, link.c.experiment_id.in_(exp_ids)))
            return _dataset(conn, dataset_id)
        return self.t.write(op)

    def upsert_records(self, dataset_id: str, records: Any) -> tuple[int, int]:
        """Insert records, or merge into those with the same inputs; returns (inserted, updated)."""
        if isinstance(records, str):
            try:
                records = json.loads(records)
            except ValueError:
                raise InvalidParameterValue("'records' must be a JSON list of records") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InvalidParameterValue("'records' must be a JSON list of records")
        for r in records:
            if not isinstance(r.get("inputs"), dict):
                raise InvalidParameterValue("Every record needs 'inputs', an object")
        r_t = s.eval_dataset_records

        def op(conn: Connection) -> tuple[int, int]:
            ds = _dataset(conn, dataset_id)
            t = now_ms()
            inserted = updated = 0
            last_user = None
            for rec in records:
                key = input_hash(rec["inputs"])
                tags = rec.get("tags") or None
                user = tags.get(USER_TAG) if isinstance(tags, dict) else None
                last_user = user or last_user
                row = conn.execute(select(r_t).where(r_t.c.dataset_id == dataset_id, r_t.c.input_hash == key)).first()
                if row is None:
                    source = rec.get("source")
                    conn.execute(insert(r_t).values(
                        dataset_record_id="dr-" + uuid.uuid4().hex, dataset_id=dataset_id, input_hash=key,
                        inputs=json_text(rec["inputs"]), outputs=json_text(rec.get("outputs")),
                        expectations=json_text(rec.get("expectations")), tags=json_text(tags), source=json_text(source),
                        source_type=(source or {}).get("source_type") if isinstance(source, dict) else None,
                        created_time=t, last_update_time=t, created_by=user, last_updated_by=user))
                    inserted += 1
                    continue
                changes: dict[str, Any] = {"last_update_time": t}
                if "outputs" in rec:
                    changes["outputs"] = json_text(rec["outputs"])
                if rec.get("expectations"):
                    changes["expectations"] = json_text({**json.loads(row.expectations or "{}"), **rec["expectations"]})
                if tags:
                    changes["tags"] = json_text({**json.loads(row.tags or "{}"), **tags})
                if user:
                    changes["last_updated_by"] = user
                conn.execute(update(r_t).where(r_t.c.dataset_record_id == row.dataset_record_id).values(**changes))
                updated += 1
            conn.execute(update(s.eval_datasets).where(s.eval_datasets.c.dataset_id == dataset_id).values(
                last_update_time=t, digest=_digest(ds["name"], t),
                last_updated_by=last_user or ds.get("last_updated_by")))
            return inserted, updated
        return self.t.write(op)

    def records(self, dataset_id: str, max_results: Any = None, page_token: str | None = None,
                ) -> tuple[list[dict[str, Any]], str | None]:
        limit = check_max_results(max_results, 1000, 50000)
        offset = search.decode_page_token(page_token)
        r_t = s.eval_dataset_records

        def op(conn: Connection) -> tuple[list[dict[str, Any]], str | None]:
            _dataset(conn, dataset_id)
            rows = conn.execute(select(r_t).where(r_t.c.dataset_id == dataset_id)
                                .order_by(r_t.c.created_time, r_t.c.dataset_record_id).offset(offset).limit(limit + 1)).all()
            token = search.encode_page_token(offset + limit) if len(rows) > limit else None
            return [_record(r) for r in rows[:limit]], token
        return self.t.read(op)

    def delete_records(self, dataset_id: str, record_ids: Sequence[str]) -> int:
        r_t = s.eval_dataset_records

        def op(conn: Connection) -> int:
            _dataset(conn, dataset_id)
            if not record_ids:
                return 0
            return int(conn.execute(delete(r_t).where(r_t.c.dataset_id == dataset_id,
                                                      r_t.c.dataset_record_id.in_(list(record_ids)))).rowcount)
        return self.t.write(op)


def _experiments(conn: Connection, dataset_id: str) -> list[str]:
    link = s.eval_dataset_experiments
    return [str(r[0]) for r in conn.execute(select(link.c.experiment_id).where(link.c.dataset_id == dataset_id)
                                            .order_by(link.c.experiment_id))]


def _dataset(conn: Connection, dataset_id: str) -> dict[str, Any]:
    row = conn.execute(select(s.eval_datasets).where(s.eval_datasets.c.dataset_id == dataset_id)).first()
    if row is None:
        raise ResourceDoesNotExist(f"Evaluation dataset '{dataset_id}' not found.")
    n = conn.execute(select(func.count()).select_from(s.eval_dataset_records)
                     .where(s.eval_dataset_records.c.dataset_id == dataset_id)).scalar_one()
    out: dict[str, Any] = {"dataset_id": row.dataset_id, "name": row.name, "digest": row.digest,
                           "created_time": row.created_time, "last_update_time": row.last_update_time,
                           "experiment_ids": _experiments(conn, dataset_id)}
    if n:  # MLflow's store writes a profile when records are merged: a dataset never filled has none
        out["profile"] = json.dumps({"num_records": n})
    for k in ("tags", "schema", "created_by", "last_updated_by"):
        if getattr(row, k) is not None:
            out[k] = getattr(row, k)
    return out


def _record(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"dataset_record_id": r.dataset_record_id, "dataset_id": r.dataset_id,
                           "inputs": json.loads(r.inputs), "created_time": r.created_time,
                           "last_update_time": r.last_update_time}
    for k in ("outputs", "expectations", "tags", "source"):
        v = getattr(r, k)
        if v is not None:
            out[k] = json.loads(v)
    for k in ("source_type", "created_by", "last_updated_by"):
        if getattr(r, k) is not None:
            out[k] = getattr(r, k)
    if isinstance(out.get("source"), dict) and out["source"].get("source_data", {}).get("trace_id"):
        out["source_id"] = out["source"]["source_data"]["trace_id"]
    return out


__all__ = ["EvalDatasetStore", "input_hash", "json_text"]

"""MLflow's evaluation datasets read from its SQL tables (``evaluation_datasets``, ``_tags``,
``_records`` and the dataset-to-experiment rows of ``entity_associations``), as import records.

MLflow keeps a record's JSON fields in JSON columns: text on SQLite and MySQL, decoded
objects from PostgreSQL's driver; both are read.  It wraps a record's outputs as
``{"mlflow_wrapped": outputs}`` (so that any value fits a JSON object column) and
unwraps them when the client reads them: so does this.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from labtrack.imports.records import EvalDatasetRecord, EvalRecordRecord

WRAPPED_OUTPUTS = "mlflow_wrapped"  # mlflow.entities.dataset_record.DATASET_RECORD_WRAPPED_OUTPUT_KEY
# entity_associations rows linking a dataset to an experiment (MLflow's EntityAssociationType values)
DATASET_LINK = ("EVALUATION_DATASET", "EXPERIMENT")


def _decoded(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def record(m: Any, stored: bool = True) -> EvalRecordRecord:
    """One record as MLflow's client reads it: an ``evaluation_dataset_records`` row's mapping
    (``stored``: JSON columns, outputs wrapped) or a record of a server's reply (decoded, unwrapped)."""
    dec = _decoded if stored else (lambda v: v)
    outputs = dec(m.get("outputs"))
    if stored and isinstance(outputs, dict) and set(outputs) == {WRAPPED_OUTPUTS}:
        outputs = outputs[WRAPPED_OUTPUTS]
    return EvalRecordRecord(
        m["dataset_record_id"], dec(m["inputs"]) or {}, outputs, dec(m.get("expectations")),
        dec(m.get("tags")), dec(m.get("source")), m.get("source_type"), int(m.get("created_time") or 0),
        int(m.get("last_update_time") or 0), m.get("created_by"), m.get("last_updated_by"))


def read(rows: Callable[[str], Iterable[Any]]) -> list[EvalDatasetRecord]:
    """Every dataset, given ``rows(sql)`` that runs a SELECT on the source."""
    out: dict[str, EvalDatasetRecord] = {}
    # Every column: later MLflows add some (workspace); read what is there.
    for r in rows("SELECT * FROM evaluation_datasets ORDER BY created_time, dataset_id"):
        m = r._mapping
        out[m["dataset_id"]] = EvalDatasetRecord(
            m["dataset_id"], m["name"], m.get("digest"), m.get("schema"), int(m.get("created_time") or 0),
            int(m.get("last_update_time") or 0), m.get("created_by"), m.get("last_updated_by"))
    for dataset_id, key, value in rows("SELECT dataset_id, key, value FROM evaluation_dataset_tags"):
        if dataset_id in out:
            out[dataset_id].tags[key] = value if value is not None else ""
    for source_id, exp_id in rows("SELECT source_id, destination_id FROM entity_associations WHERE "
                                  f"UPPER(source_type) = '{DATASET_LINK[0]}' AND "
                                  f"UPPER(destination_type) = '{DATASET_LINK[1]}' ORDER BY destination_id"):
        if source_id in out:
            out[source_id].experiment_ids.append(str(exp_id))
    for r in rows("SELECT * FROM evaluation_dataset_records ORDER BY created_time, dataset_record_id"):
        m = r._mapping
        if m["dataset_id"] in out:
            out[m["dataset_id"]].records.append(record(m))
    return list(out.values())


__all__ = ["DATASET_LINK", "read", "record"]

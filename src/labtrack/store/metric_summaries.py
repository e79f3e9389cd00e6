"""Per run and metric: min, max and last, and the step of each (issue 20's summary columns).

Read from ``latest_metrics``, which ingest keeps current as points arrive
(``store.metrics._upsert_latest``): one row per run and key, never the history.
NaN points count for ``last`` (MLflow's latest value) but never for min or max,
which are None while a metric has only NaN; ``min_step``/``max_step`` are the
smallest step holding the min / max.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from labtrack.errors import InvalidParameterValue
from labtrack.store import schema as s
from labtrack.store.loading import chunks, metric_value

MAX_RUNS = 1000
MAX_KEYS = 1000
FIELDS = ("min", "max", "last", "min_step", "max_step", "last_step")

_lm, _r = s.latest_metrics, s.runs


def check_request(run_ids: Any, keys: Any) -> tuple[list[str], list[str] | None]:
    """The run ids and keys of a request, checked: lists of strings within the limits."""
    if not isinstance(run_ids, list) or not run_ids or not all(isinstance(r, str) and r for r in run_ids):
        raise InvalidParameterValue("'run_ids' must be a non-empty list of run id strings")
    if len(run_ids) > MAX_RUNS:
        raise InvalidParameterValue(f"'run_ids' lists {len(run_ids)} runs; at most {MAX_RUNS} per request")
    if keys is None:
        return list(dict.fromkeys(run_ids)), None
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise InvalidParameterValue("'keys' must be a list of metric key strings")
    if len(keys) > MAX_KEYS:
        raise InvalidParameterValue(f"'keys' lists {len(keys)} metrics; at most {MAX_KEYS} per request")
    return list(dict.fromkeys(run_ids)), list(dict.fromkeys(keys))


def summaries(conn: Connection, run_ids: Sequence[str],
              keys: Sequence[str] | None = None) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    """({run_id: {key: {min, max, last, min_step, max_step, last_step}}}, {run_id: experiment_id}).

    Runs that do not exist are absent from both; a run without any of ``keys``
    (all keys when None) maps to ``{}``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    experiments: dict[str, str] = {}
    for part in chunks(list(run_ids)):
        for run_id, exp_id in conn.execute(select(_r.c.run_uuid, _r.c.experiment_id).where(_r.c.run_uuid.in_(part))):
            experiments[run_id] = str(exp_id)
            out[run_id] = {}
    if not out or keys == []:
        return out, experiments
    cols = (_lm.c.run_uuid, _lm.c.key, _lm.c.value, _lm.c.is_nan, _lm.c.step, _lm.c.min_value, _lm.c.min_step,
            _lm.c.max_value, _lm.c.max_step)
    key_parts = [None] if keys is None else list(chunks(list(keys), 400))
    for part in chunks(list(out), 400):
        for kpart in key_parts:
            where = [_lm.c.run_uuid.in_(part)] + ([] if kpart is None else [_lm.c.key.in_(kpart)])
            for run_id, key, value, is_nan, step, lo, lo_step, hi, hi_step in conn.execute(select(*cols).where(*where)):
                out[run_id][key] = {"min": lo, "max": hi, "last": metric_value(value, is_nan),
                                    "min_step": lo_step, "max_step": hi_step, "last_step": step}
    return out, experiments

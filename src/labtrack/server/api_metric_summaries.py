"""``POST /api/2.0/labtrack/runs/metric-summaries``: min, max and last of metrics, with their steps.

Request ``{"run_ids": [...], "keys": [...]?}`` (at most 1,000 of each; all the
runs' metrics without ``keys``).  Reply ``{"summaries": {run_id: {key: {"min",
"max", "last", "min_step", "max_step", "last_step"}}}}``: the web UI's summary
and best-step columns for a page of runs, from one row per run and key
(store/metric_summaries.py).  A run that does not exist is left out; a NaN last
value is ``"NaN"`` as in MLflow's JSON; min and max ignore NaN (null when a
metric has only NaN).  On a basic-auth server every run's experiment must be
readable by the user.
"""

from __future__ import annotations

from typing import Any

from labtrack.entities import encode_double
from labtrack.server.args import Args
from labtrack.server.auth import EXPERIMENT
from labtrack.server.base import ServerContext
from labtrack.store.metric_summaries import check_request, summaries


def metric_summaries(ctx: ServerContext, a: Args) -> dict[str, Any]:
    run_ids, keys = check_request(a.data.get("run_ids"), a.data.get("keys"))
    found, experiments = ctx.store.read(lambda conn: summaries(conn, run_ids, keys))
    auth = ctx.extra.get("auth")
    if auth is not None and a.user is not None:  # a team server: READ on each run's experiment
        auth.require(a.user, EXPERIMENT, set(experiments.values()), "can_read")
    for per_key in found.values():
        for item in per_key.values():
            for field in ("min", "max", "last"):
                if item[field] is not None:
                    item[field] = encode_double(item[field])
    return {"summaries": found}


LABTRACK_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("runs/metric-summaries", {"POST": metric_summaries}),
]

"""``POST /api/2.0/labtrack/runs/table``: the runs table's rows and group statistics, windowed.

The web UI asks for one window of the table (``offset``, ``limit``) in its sort order with only
the columns it shows, or for the statistics of a group-by, instead of downloading every run
through ``runs/search`` (see store/run_table.py).  Request fields:

- ``experiment_ids`` (list, required), ``filter`` (MLflow's search grammar), ``run_view_type``
- ``sort``: ``"<column id>:asc|desc"`` (default ``attr.start:desc``); column ids are ``attr.<name>``,
  ``metrics.<key>``, ``params.<key>``, ``tags.<key>``
- ``columns``: the column ids whose values the rows carry
- ``offset``, ``limit`` (at most 1,000): the window; ``count``: false to skip counting (``total`` null)
- ``group`` (a column id) with ``group_value``: the window holds only that group's runs
- ``stats``: true for ``{"groups": [{"value", "count", "metrics": {key: {n, mean, std, min,
  max}}}]}`` of ``group`` over the metric columns instead of rows
- ``keys``: true for ``{"keys": {"metrics": [...], "params": [...], "tags": [...]}}`` of the runs (with
  ``sample``: of the newest ``sample`` runs only)
"""

from __future__ import annotations

from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.server.args import Args
from labtrack.server.base import ServerContext
from labtrack.store.validation import check_experiment_id


def run_table(ctx: ServerContext, a: Args) -> dict[str, Any]:
    from labtrack.store import run_table as rt

    ids = [int(check_experiment_id(str(i))) for i in a.list("experiment_ids")]
    if not ids:
        raise InvalidParameterValue("Missing value for required parameter 'experiment_ids'")
    group = a.str("group") or ""
    group_value = a.str("group_value") if a.has("group_value") else None
    if group_value is not None and not group:
        raise InvalidParameterValue("group_value needs group")
    q = rt.TableQuery(ids, a.str("filter") or "", a.view_type("run_view_type") or "ACTIVE_ONLY",
                      a.str("sort") or "attr.start:desc", group, group_value)
    columns = a.str_list("columns")
    if a.bool("keys"):
        sample = a.int("sample")
        return {"keys": ctx.store.read(lambda conn: rt.keys(conn, q, sample))}
    if a.bool("stats"):
        metric_keys = [c.partition(".")[2] for c in columns if c.startswith("metrics.")]
        return ctx.store.read(lambda conn: rt.groups(conn, q, metric_keys))
    offset = a.int("offset") or 0
    limit = a.int("limit", default=100)
    assert limit is not None
    count = a.bool("count", default=True)
    return ctx.store.read(lambda conn: rt.window(conn, q, columns, offset, limit, count))


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("runs/table", {"POST": run_table}),
]

"""The web UI's runs table, computed in the database: one window of rows, or group statistics.

MLflow's ``runs/search`` sends every run whole (all params, metrics and tags as JSON objects),
so a table that sorts and groups in the browser must first download all of them: at
100,000 runs that is minutes and hundreds of MB.  Here the database sorts, counts and
groups, and only what the table shows travels:

* ``window``: the total count of runs that match and one window (offset, limit) of them in
  the table's order, with the run attributes and only the shown metrics, params and tags,
  column by column;
* ``groups``: for a group-by column, each value's run count and, per shown metric, the
  count, mean, sample standard deviation, min and max of the runs' latest values;
* ``keys``: the metric, param and tag keys of the runs (the column picker's choices).

Sort order follows the UI's ``compareValues``: missing values (and NaN) last in both
directions, params and tags that read as numbers before the others and compared as numbers,
ties broken by newest start then run id, so windows tile the result without gaps or repeats.
Filters use MLflow's search grammar (``store.search``), as ``runs/search`` does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, and_, case, cast, func, select

from labtrack.entities import encode_double
from labtrack.errors import InvalidParameterValue
from labtrack.store import schema as s
from labtrack.store import search
from labtrack.store.loading import metric_value
from labtrack.store.snapshot_readers import MAX_SPLIT, cores, on_one_snapshot, split_across

MAX_WINDOW = 1000
MAX_GROUPS = 5000
MAX_KEYS = 2000

_r, _p, _t, _lm = s.runs, s.params, s.tags, s.latest_metrics
_ATTR_COLUMNS = {
    "name": _r.c.name, "status": _r.c.status, "start": _r.c.start_time, "user": _r.c.user_id,
    "experiment": _r.c.experiment_id, "id": _r.c.run_uuid,
}
# Attribute columns that the UI shows from a tag.
_ATTR_TAGS = {"source": "mlflow.source.name", "version": "mlflow.source.git.commit"}
_GROUP_ATTRS = {"user": _r.c.user_id, "status": _r.c.status, "experiment": _r.c.experiment_id}


@dataclass(frozen=True)
class TableQuery:
    """Which runs the table holds and in what order."""

    experiment_ids: Sequence[int]
    filter_string: str = ""
    view_type: str = "ACTIVE_ONLY"
    sort: str = "attr.start:desc"  # "<column id>:asc|desc", as the UI keeps it in its URL
    group: str = ""  # "" or a column id: attr.user|status|experiment, params.<k>, tags.<k>
    group_value: str | None = None  # only runs whose group column reads this ("" = missing)


# The web UI's metric summary columns, summary.<stat>.<key> (issue 20, summaries.ts; a best
# step arrives as the min's or the max's step): latest_metrics keeps each per run and key.
_SUMMARY_STATS = ("min", "max", "last", "min_step", "max_step")


def _split(column_id: str, what: str) -> tuple[str, str]:
    kind, dot, key = column_id.partition(".")
    if kind == "summary" and key.partition(".")[0] in _SUMMARY_STATS and key.partition(".")[2]:
        return kind, key
    if not dot or not key or kind not in ("attr", "metrics", "params", "tags"):
        raise InvalidParameterValue(f"Invalid {what} {column_id!r}: expected attr.<name>, metrics.<key>, "
                                    "params.<key>, tags.<key> or summary.<stat>.<key>")
    return kind, key


def _looks_numeric(conn: Connection, value: Any) -> Any:
    """A text column that reads wholly as a number (the UI's ``asNumber``), per dialect."""
    if conn.dialect.name == "postgresql":
        return value.op("~")(r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$")
    trimmed = func.trim(value)
    # SQLite has no regular expressions: digits, sign, point and exponent only, with a digit.
    return and_(trimmed != "", ~trimmed.op("GLOB")("*[^0-9.eE+-]*"), trimmed.op("GLOB")("*[0-9]*"))


def _text_order(conn: Connection, value: Any, ascending: bool) -> list[Any]:
    numeric = _looks_numeric(conn, value)
    rank = case((value.is_(None), 2), (numeric, 0), else_=1)
    as_number = case((numeric, cast(value, Float)), else_=None)
    return [rank.asc(), as_number.asc() if ascending else as_number.desc(),
            value.asc() if ascending else value.desc()]


def _base(conn: Connection, q: TableQuery) -> tuple[Any, list[Any]]:
    """(FROM clause with the joins the sort and group need, WHERE conditions)."""
    if not q.experiment_ids:
        raise InvalidParameterValue("experiment_ids must name at least one experiment")
    where = [_r.c.experiment_id.in_(list(q.experiment_ids)), *search.lifecycle(_r.c.lifecycle_stage, q.view_type),
             *search.run_conditions(q.filter_string or None)]
    src: Any = _r
    if q.group_value is not None:
        gcol, src = _group_column(q.group, src, "g")
        where.append(func.coalesce(cast(gcol, s.params.c.value.type), "") == q.group_value)
    return src, where


def _group_key(group: str) -> tuple[str, str]:
    """(kind, key) of a group-by column: attr.user|status|experiment, params.<k> or tags.<k>."""
    kind, key = _split(group, "group")
    if kind == "attr" and key not in _GROUP_ATTRS:
        raise InvalidParameterValue(f"Invalid group {group!r}: runs group by user, status, experiment, "
                                    "a param or a tag")
    if kind in ("metrics", "summary"):
        raise InvalidParameterValue(f"Invalid group {group!r}: runs group by a param, a tag or an attribute")
    return kind, key


def _group_column(group: str, src: Any, alias: str, run_id: Any = _r.c.run_uuid,
                  attr: Any = None) -> tuple[Any, Any]:
    """(the group value's column, ``src`` joined to the param or tag that holds it); ``run_id``:
    the run id column of ``src``, ``attr``: the attribute's column there (default: the runs')."""
    kind, key = _group_key(group)
    if kind == "attr":
        return (_GROUP_ATTRS[key] if attr is None else attr), src
    table = (_p if kind == "params" else _t).alias(alias)
    return table.c.value, src.outerjoin(table, and_(table.c.run_uuid == run_id, table.c.key == key))


def _order(conn: Connection, sort: str, src: Any) -> tuple[list[Any], Any]:
    column_id, _, direction = sort.rpartition(":")
    if direction not in ("asc", "desc") or not column_id:
        raise InvalidParameterValue(f"Invalid sort {sort!r}: expected <column>:asc or <column>:desc")
    ascending = direction == "asc"
    kind, key = _split(column_id, "sort")
    out: list[Any] = []
    if kind == "attr" and key in _ATTR_TAGS:
        kind, key = "tags", _ATTR_TAGS[key]
    if kind == "attr":
        if key == "duration":
            ended = func.coalesce(_r.c.end_time, int(1e15))  # a running run: longest so far, as the UI's now - start
            col: Any = ended - _r.c.start_time
        elif key in _ATTR_COLUMNS:
            col = _ATTR_COLUMNS[key]
        else:
            raise InvalidParameterValue(f"Invalid sort {sort!r}: unknown attribute {key!r}")
        if key == "start" and not ascending and conn.dialect.name == "sqlite":
            # SQLite sorts NULL last in DESC by itself: the plain column lets a window walk
            # ix_runs_experiment_start instead of sorting every run (the table's default order).
            out.append(col.desc())
        else:
            out += [case((col.is_(None), 1), else_=0).asc(), col.asc() if ascending else col.desc()]
    elif kind == "summary":
        stat, _, key = key.partition(".")
        m = _lm.alias("sort_m")
        src = src.outerjoin(m, and_(m.c.run_uuid == _r.c.run_uuid, m.c.key == key))
        col = {"min": m.c.min_value, "max": m.c.max_value, "min_step": m.c.min_step, "max_step": m.c.max_step,
               "last": case((m.c.is_nan == False, m.c.value), else_=None)}[stat]  # noqa: E712
        out += [case((col.is_(None), 1), else_=0).asc(), col.asc() if ascending else col.desc()]
    elif kind == "metrics":
        m = _lm.alias("sort_m")
        src = src.outerjoin(m, and_(m.c.run_uuid == _r.c.run_uuid, m.c.key == key))
        usable = and_(m.c.run_uuid.is_not(None), m.c.is_nan == False)  # noqa: E712
        # ±Inf are numbers to the UI: stored as ±1.7976931348623157e308 they sort in place.
        out += [case((usable, 0), else_=1).asc(), m.c.value.asc() if ascending else m.c.value.desc()]
    else:
        kv = (_p if kind == "params" else _t).alias("sort_kv")
        src = src.outerjoin(kv, and_(kv.c.run_uuid == _r.c.run_uuid, kv.c.key == key))
        out += _text_order(conn, kv.c.value, ascending)
    if column_id != "attr.start":
        out += [case((_r.c.start_time.is_(None), 1), else_=0).asc(), _r.c.start_time.desc()]
    out.append(_r.c.run_uuid.asc())
    return out, src


_RUN_ROW = (_r.c.run_uuid, _r.c.experiment_id, _r.c.name, _r.c.user_id, _r.c.status, _r.c.start_time, _r.c.end_time,
            _r.c.lifecycle_stage)


def _by_metric(conn: Connection, src: Any, where: list[Any], key: str, ascending: bool, offset: int,
               limit: int) -> list[Any]:
    """A window in a metric's order on SQLite, which has no hash join: the runs with a number
    for the metric come from the (key, value) index in its order, so a window reads about
    offset + limit index entries instead of joining and sorting every run; the runs without one
    (missing or NaN) follow, newest first.  Ties in value go by run id."""
    ids = select(_r.c.run_uuid).select_from(src).where(*where)
    m = _lm.alias("sort_m")
    has = [m.c.key == key, m.c.is_nan == False, m.c.run_uuid.in_(ids)]  # noqa: E712
    found = list(conn.execute(select(m.c.run_uuid).where(*has)
                              .order_by(m.c.value.asc() if ascending else m.c.value.desc(), m.c.run_uuid)
                              .offset(offset).limit(limit)).scalars())
    if len(found) < limit:
        n_have = offset + len(found) if found else conn.execute(select(func.count()).where(*has)).scalar_one()
        m2 = _lm.alias("has_m")
        lacking = ~select(m2.c.run_uuid).where(m2.c.run_uuid == _r.c.run_uuid, m2.c.key == key,
                                               m2.c.is_nan == False).correlate(_r).exists()  # noqa: E712
        order, src2 = _order(conn, "attr.start:desc", src)
        found += conn.execute(select(_r.c.run_uuid).select_from(src2).where(*where, lacking).order_by(*order)
                              .offset(max(0, offset - n_have)).limit(limit - len(found))).scalars()
    if not found:
        return []
    by_id = {r.run_uuid: r for r in conn.execute(select(*_RUN_ROW).where(_r.c.run_uuid.in_(found)))}
    return [by_id[i] for i in found]


def window(conn: Connection, q: TableQuery, columns: Sequence[str], offset: int, limit: int,
           count: bool = True) -> dict[str, Any]:
    """One window of the table: ``total`` runs match; rows ``offset`` .. ``offset + limit``.

    ``count=False``: no count, "total" is None.  Returns {"total", "offset", "runs": {attribute:
    [...]}, "metrics": {key: [[value, step, timestamp] | None, ...]}, "params": {key: [...]},
    "tags": {key: [...]}}, every list in row order.
    """
    if not 0 <= limit <= MAX_WINDOW:
        raise InvalidParameterValue(f"Invalid limit {limit}: at most {MAX_WINDOW} rows per window")
    if not 0 <= offset < 2**62:
        raise InvalidParameterValue(f"Invalid offset {offset}")
    src, where = _base(conn, q)
    # A group's window needs no count: the group statistics gave it (counting a group's runs
    # looked up every run's param, half a second of CPU at 100,000 runs).
    total = conn.execute(select(func.count()).select_from(src).where(*where)).scalar_one() if count else None
    sort_id, _, direction = q.sort.rpartition(":")
    if sort_id.startswith("metrics.") and direction in ("asc", "desc") and conn.dialect.name == "sqlite":
        rows = _by_metric(conn, src, where, sort_id[len("metrics."):], direction == "asc", offset, limit)
    else:
        order, src = _order(conn, q.sort, src)
        rows = conn.execute(select(*_RUN_ROW).select_from(src).where(*where).order_by(*order)
                            .offset(offset).limit(limit)).all()
    ids = [r.run_uuid for r in rows]
    wanted: dict[str, set[str]] = {"metrics": set(), "params": set(), "tags": {"mlflow.parentRunId"}}
    for c in columns:
        kind, key = _split(c, "column")
        if kind == "attr":
            if key in _ATTR_TAGS:
                wanted["tags"].add(_ATTR_TAGS[key])
        elif kind == "summary":
            continue  # the UI reads summaries from runs/metric-summaries
        else:
            wanted[kind].add(key)
    at = {run_id: i for i, run_id in enumerate(ids)}
    out: dict[str, Any] = {
        "total": total, "offset": offset,
        "runs": {
            "run_id": ids, "experiment_id": [str(r.experiment_id) for r in rows],
            "run_name": [r.name for r in rows], "user_id": [r.user_id for r in rows],
            "status": [r.status for r in rows], "start_time": [r.start_time for r in rows],
            "end_time": [r.end_time for r in rows], "lifecycle_stage": [r.lifecycle_stage for r in rows],
        },
    }
    for kind, table in (("params", _p), ("tags", _t), ("metrics", _lm)):
        keys = sorted(wanted[kind])
        values: dict[str, list[Any]] = {k: [None] * len(ids) for k in keys}
        if ids and keys:
            cols = ([table.c.value, table.c.is_nan, table.c.step, table.c.timestamp] if kind == "metrics"
                    else [table.c.value])
            found = conn.execute(select(table.c.run_uuid, table.c.key, *cols)
                                 .where(table.c.run_uuid.in_(ids), table.c.key.in_(keys)))
            for r in found:
                if kind == "metrics":
                    v = metric_value(r.value, r.is_nan)
                    values[r.key][at[r.run_uuid]] = [encode_double(v), r.step, r.timestamp]
                else:
                    values[r.key][at[r.run_uuid]] = r.value
        out[kind] = values
    return out


# Metric columns per group statement: each is one more join, and SQLite joins at most 64 tables.
_KEYS_PER_STATEMENT = 24


def groups(conn: Connection, q: TableQuery, metric_keys: Sequence[str]) -> dict[str, Any]:
    """Each value of ``q.group`` among the matching runs: its run count and, per metric key, the
    count, mean, sample std (n - 1; 0 for one run), min and max of the runs' latest values
    (NaN and missing left out).  Values come as the UI reads them ("" for a missing param).
    """
    if not q.group:
        raise InvalidParameterValue("group is required for group statistics")
    _group_key(q.group)  # a bad group is refused before the filter is read
    src, where = _base(conn, TableQuery(q.experiment_ids, q.filter_string, q.view_type))
    keys = list(dict.fromkeys(metric_keys))
    if conn.dialect.name == "postgresql":
        out = _hashed_groups(conn, q.group, src, where, keys)
    else:
        out = _probed_groups(conn, q.group, src, where, keys, _parts(conn, q))
    rows = [out[v] for v in sorted(out)]
    return {"groups": rows[:MAX_GROUPS], "truncated": len(rows) > MAX_GROUPS}


# Group values' sums: value -> [run count, [n, Σd, Σd², min, max] or None per metric key], where
# d is a value less its key's shift.
_Sums = dict[str, list[Any]]


# A group-by of at least this many runs on SQLite is split by run id across one thread and
# connection per core, at most MAX_SPLIT (issue 21: at 100,000 runs on 2 cores the request took
# 0.57 s against 1.07 s at the same CPU, bench/bench_groups.py; no faster with no idle core).
# Any split is exact: run ids need not spread evenly (imported ones), they only balance the parts.
SPLIT_MIN_RUNS = int(os.environ.get("LABTRACK_GROUP_SPLIT_MIN_RUNS") or 20_000)


def _parts(conn: Connection, q: TableQuery) -> int:
    """How many parts a group-by of ``q`` on SQLite splits into: 1 for fewer than SPLIT_MIN_RUNS
    runs (counted by experiment, before the filter), on one core, or when ``conn`` is in a
    transaction already (its snapshot is the answer's)."""
    n = min(cores(), MAX_SPLIT)
    if n < 2 or conn.in_transaction():
        return 1
    runs = select(_r.c.run_uuid).where(_r.c.experiment_id.in_(list(q.experiment_ids)),
                                       *search.lifecycle(_r.c.lifecycle_stage, q.view_type))
    found = conn.execute(select(func.count()).select_from(runs.limit(SPLIT_MIN_RUNS).subquery())).scalar_one()
    conn.rollback()  # the parts begin their transactions together (snapshot_readers)
    return n if found >= SPLIT_MIN_RUNS else 1


def _probed_groups(conn: Connection, group: str, src: Any, where: list[Any], keys: list[str],
                   parts: int) -> dict[str, dict[str, Any]]:
    """SQLite's group statistics: one row per run, its metrics looked up by primary key; in
    ``parts`` ranges of run ids on as many threads and connections when all can read one
    snapshot (snapshot_readers), each range's sums added up here."""
    with on_one_snapshot(conn, parts) as conns:
        # Sums are taken around a shift near the data (one value of the key), so the variance
        # from sums of squares keeps its digits when values sit far from zero.
        shifts = {k: conn.execute(select(_lm.c.value).where(_lm.c.key == k, _lm.c.is_nan == False)  # noqa: E712
                                  .limit(1)).scalar() or 0.0 for k in keys}
        cuts = [None, *(format(i * 0x10000 // len(conns), "04x") for i in range(1, len(conns))), None]

        def part(i: int, c: Connection) -> _Sums:
            lo, hi = cuts[i], cuts[i + 1]
            ranged = [*where, *([_r.c.run_uuid >= lo] if lo else []), *([_r.c.run_uuid < hi] if hi else [])]
            return _probed_sums(c, group, src, ranged, keys, [shifts[k] for k in keys])

        found = split_across(conns, part)
    sums = found[0]
    for more in found[1:]:
        _add_sums(sums, more)
    out: dict[str, dict[str, Any]] = {}
    for v, (n, per_key) in sums.items():
        metrics: dict[str, Any] = {}
        for k, got in zip(keys, per_key):
            if got is not None:
                n_k, sd, sdd, lo, hi = got
                mean_d = sd / n_k
                var = (sdd - n_k * mean_d * mean_d) / (n_k - 1) if n_k > 1 else 0.0
                metrics[k] = _stats(n_k, shifts[k] + mean_d, var, lo, hi)
        out[v] = {"value": v, "count": n, "metrics": metrics}
    return out


def _probed_sums(conn: Connection, group: str, src: Any, where: list[Any], keys: list[str],
                 shifts: list[float]) -> _Sums:
    """The sums of the runs that ``where`` keeps, by group value."""
    kind, key = _group_key(group)
    # The matching runs once, in run id order, then per run its group value and one row per
    # metric key, each found by its primary key (run id, key): SQLite has no hash join, and
    # look-ups in run id order walk params, tags and latest_metrics (WITHOUT ROWID tables,
    # migration 0010) front to back instead of jumping about.  One row per run with a column
    # per metric needs no sort of the 1,000,000 (run, metric) rows by group and key, only of
    # the 100,000 runs by group.
    ids = select(_r.c.run_uuid.label("id"), *([_GROUP_ATTRS[key].label("v")] if kind == "attr" else []))
    ids = ids.select_from(src).where(*where)
    # With a LIMIT SQLite keeps a subquery's ORDER BY (3.40 drops it otherwise).
    ids = ids.order_by(_r.c.run_uuid).limit(-1)
    r = ids.cte("r").prefix_with("MATERIALIZED")
    gcol, runs = _group_column(group, r, "g", run_id=r.c.id, attr=r.c.v if kind == "attr" else None)
    value = func.coalesce(cast(gcol, s.params.c.value.type), "")
    out: _Sums = {}
    for start in range(0, max(len(keys), 1), _KEYS_PER_STATEMENT):
        chunk = keys[start:start + _KEYS_PER_STATEMENT]
        joined, cols = runs, [value, func.count()]
        for i, k in enumerate(chunk):
            m = _lm.alias(f"m{i}")
            joined = joined.outerjoin(m, and_(m.c.run_uuid == r.c.id, m.c.key == k, m.c.is_nan == False))  # noqa: E712
            d = m.c.value - shifts[start + i]
            cols += [func.count(m.c.value), func.sum(d), func.sum(d * d), func.min(m.c.value), func.max(m.c.value)]
        for v, n, *stats in conn.execute(select(*cols).select_from(joined).group_by(value)):
            per_key = out.setdefault(v, [n, [None] * len(keys)])[1]
            for i in range(len(chunk)):
                if stats[5 * i]:
                    per_key[start + i] = list(stats[5 * i:5 * i + 5])
    return out


def _add_sums(into: _Sums, more: _Sums) -> None:
    """``into`` becomes the sums of both parts' runs (exact: counts and sums add, min and max
    are the lesser and the greater)."""
    for v, (n, per_key) in more.items():
        have = into.setdefault(v, [0, [None] * len(per_key)])
        have[0] += n
        for i, got in enumerate(per_key):
            old = have[1][i]
            if old is None:
                have[1][i] = got
            elif got is not None:
                have[1][i] = [old[0] + got[0], old[1] + got[1], old[2] + got[2], min(old[3], got[3]),
                              max(old[4], got[4])]


def _hashed_groups(conn: Connection, group: str, src: Any, where: list[Any],
                   keys: list[str]) -> dict[str, dict[str, Any]]:
    """PostgreSQL's group statistics: the runs' count by group, then one statement that reads the
    keys' latest values once (``key IN (...)``), hash-joins them to the runs and their group
    values and hash-aggregates them by (group, key) with PostgreSQL's avg and var_samp (stable
    without a shift).  A join per key, as ``_probed_groups``, scanned latest_metrics once per key
    here; this plan sorts the 1,000,000 (group, key) rows of 100,000 runs on SQLite instead."""
    gcol, runs = _group_column(group, src, "g")
    value = func.coalesce(cast(gcol, s.params.c.value.type), "")
    counts = conn.execute(select(value, func.count()).select_from(runs).where(*where).group_by(value))
    out: dict[str, dict[str, Any]] = {v: {"value": v, "count": n, "metrics": {}} for v, n in counts}
    if not keys:
        return out
    m = _lm.alias("m")
    joined = runs.join(m, and_(m.c.run_uuid == _r.c.run_uuid, m.c.key.in_(keys), m.c.is_nan == False))  # noqa: E712
    found = conn.execute(select(value, m.c.key, func.count(), func.avg(m.c.value), func.var_samp(m.c.value),
                                func.min(m.c.value), func.max(m.c.value))
                         .select_from(joined).where(*where).group_by(value, m.c.key))
    by_group: dict[str, dict[str, Any]] = {}
    for v, k, n, mean, var, lo, hi in found:
        by_group.setdefault(v, {})[k] = _stats(n, mean, var if n > 1 else 0.0, lo, hi)
    for v, metrics in by_group.items():
        # (a group that a run logged between the two statements brought: counted by its metrics)
        g = out.setdefault(v, {"value": v, "count": max(x["n"] for x in metrics.values()), "metrics": {}})
        g["metrics"] = {k: metrics[k] for k in keys if k in metrics}  # in the columns' order
    return out


def _stats(n: int, mean: float, var: float, lo: float, hi: float) -> dict[str, Any]:
    """A metric's statistics as the API sends them: n, mean, sample std, min and max."""
    return {"n": n, "mean": encode_double(mean), "std": encode_double(math.sqrt(max(0.0, var))),
            "min": encode_double(lo), "max": encode_double(hi)}


def keys(conn: Connection, q: TableQuery, sample: int | None = None) -> dict[str, list[str]]:
    """The metric, param and tag keys of the matching runs, each sorted (at most MAX_KEYS each).

    ``sample``: only those of the newest ``sample`` runs (the table's first columns, at once).
    """
    src, where = _base(conn, q)
    runs: Any = select(_r.c.run_uuid).select_from(src).where(*where)
    if sample is not None:
        runs = runs.order_by(_r.c.start_time.desc()).limit(sample).scalar_subquery()
    out: dict[str, list[str]] = {}
    for kind, table in (("metrics", _lm), ("params", _p), ("tags", _t)):
        found = conn.execute(select(table.c.key).distinct().where(table.c.run_uuid.in_(runs))
                             .order_by(table.c.key).limit(MAX_KEYS)).scalars().all()
        out[kind] = list(found)
    return out


__all__ = ["MAX_WINDOW", "TableQuery", "groups", "keys", "window"]

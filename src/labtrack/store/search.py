"""MLflow's search grammar, compiled to SQLAlchemy Core (reference §4).

Filter strings such as ``metrics.rmse < 1 AND params.`lr` = '0.1'`` and
order_by entries such as ``metrics.rmse DESC`` become WHERE conditions and
ORDER BY expressions for runs, experiments, registered models, model versions
and logged models.  Conditions on tags, params and metrics are correlated
EXISTS / scalar subqueries against the parent table of :mod:`schema` itself
(``schema.runs``, ...), so the caller selects from that table, unaliased:

    select(runs.c.run_uuid).where(*run_conditions(f)).order_by(*run_order_by(o))

The text is parsed by :mod:`search_syntax`; this module gives each clause its
meaning for each kind of object, and its SQL.

Rules that are easy to get wrong:

* Clauses are joined by ``AND`` only; keywords and operators ignore case.
* A clause on a missing key is false, except ``IS NULL``.  The registry is the
  exception MLflow's client relies on: ``tag.k != 'v'`` on registered models and
  model versions also matches rows without the tag (an anti-join), because the
  client appends ``tags.`mlflow.prompt.is_prompt` != 'true'`` to every search.
* NaN metrics (stored as 0 with ``is_nan`` set) follow IEEE 754, as MLflow's
  in-memory matcher does: every comparison is false except ``!=``.
* ``LIKE`` is case-sensitive and ``ILIKE`` is not, on SQLite and PostgreSQL
  alike; ``%`` and ``_`` are wildcards and a backslash escapes them.
* Strings are '...' or "..."; a doubled quote inside stands for itself.
* In order_by, missing keys and NaN sort last in both directions.
* ``metrics.<key>.min|max|last`` (labtrack's extension, runs only) compare or sort by
  the history's min / max (NaN ignored; a metric of only NaN has none and sorts after
  the numbers) or its latest value; which keys read so is search_syntax.METRIC_STATS'.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (Boolean, Column, String, Table, and_, case, cast, false, func, literal,
                        or_, select, true)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

from labtrack.entities import VIEW_TYPES
from labtrack.errors import InvalidParameterValue
from labtrack.store import schema as s
from labtrack.store.search_syntax import (
    INTEGER,
    LIST_OPS,
    NULL_OPS,
    NUMERIC_OPS,
    PLURAL,
    TEXT_OPS,
    Clause,
    OrderKey,
    parse_filter,
    parse_order,
)

__all__ = [
    "Page", "decode_page_token", "encode_page_token", "lifecycle", "run_conditions", "run_order_by",
    "experiment_conditions", "experiment_order_by", "registered_model_conditions",
    "registered_model_order_by", "model_version_conditions", "model_version_order_by",
    "logged_model_conditions", "logged_model_order_by",
]

# --- page tokens --------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A decoded page token: how many rows of the ordered result to skip."""

    offset: int


def encode_page_token(offset: int) -> str:
    """Return MLflow's opaque page token for ``offset``: base64 of ``{"offset": N}``."""
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode("ascii")


def decode_page_token(token: str | None) -> int:
    """Return the offset in ``token``; ``None`` or ``""`` is the first page (0).

    Raises :class:`InvalidParameterValue` for anything that
    :func:`encode_page_token` could not have produced.
    """
    if not token:
        return 0
    try:
        data = json.loads(base64.b64decode(str(token), validate=True))
    except (ValueError, binascii.Error, RecursionError):  # UnicodeDecodeError is a ValueError
        shown = str(token)[:100]
        raise InvalidParameterValue(f"Invalid page token {shown!r}: not base64 of JSON") from None
    offset = data.get("offset") if isinstance(data, dict) else None
    # The bound keeps offset + limit inside SQL's int64 (SQLite raises OverflowError past it).
    if type(offset) is not int or not 0 <= offset < 2**62:
        raise InvalidParameterValue(f"Invalid page token {token!r}: no valid offset")
    return offset


# --- case-sensitive LIKE on every dialect ---------------------------------------


class _PatternMatch(ColumnElement[bool]):
    """``column LIKE pattern`` (or ILIKE), compiled per dialect.

    SQLite's LIKE ignores ASCII case, so there a case-sensitive match becomes a
    GLOB with the same meaning.  Elsewhere LIKE/ILIKE are used as they are
    (backslash is PostgreSQL's default LIKE escape).
    """

    type = Boolean()
    inherit_cache = False  # holds plain attributes that the cache key cannot see
    _is_implicitly_boolean = True  # else SQLite renders "... GLOB ? = 1"

    def __init__(self, column: ColumnElement[Any], pattern: str, case_sensitive: bool) -> None:
        self.column = column
        self.pattern = pattern
        self.case_sensitive = case_sensitive

    @property
    def _from_objects(self) -> list[Any]:  # lets correlation see the column's table
        return self.column._from_objects


@compiles(_PatternMatch)
def _compile_pattern_match(element: _PatternMatch, compiler: Any, **kw: Any) -> str:
    col, pattern = element.column, element.pattern
    if compiler.dialect.name != "sqlite":
        expr = col.like(pattern) if element.case_sensitive else col.ilike(pattern)
    elif element.case_sensitive:
        expr = col.op("GLOB", is_comparison=True)(_like_to_glob(pattern))
    else:  # SQLite's LIKE has no escape character unless told
        expr = col.like(pattern, escape="\\")
    return compiler.process(expr, **kw)


def _like_to_glob(pattern: str) -> str:
    """Translate a LIKE pattern (``%``, ``_``, backslash escape) into a GLOB pattern."""
    out, escaped = [], False
    for ch in pattern:
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if ch in "%_" and not escaped:
            out.append("*" if ch == "%" else "?")
        else:  # GLOB's own wildcards, when literal, go in brackets
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        escaped = False
    return "".join(out)


# --- what each kind of object can be searched by ----------------------------------


@dataclass(frozen=True)
class _Attr:
    column: Column[Any]
    kind: str = "str"  # "str"; "num" (integer ms, numbers); "id" (integer column, string ids)
    lists: bool = False  # IN / NOT IN allowed


@dataclass(frozen=True)
class _Spec:
    noun: str
    parent: Table
    link: tuple[str, ...]  # columns, same-named in parent and child tables
    attrs: Mapping[str, _Attr]  # filterable; lower-case names
    order_attrs: Mapping[str, Column[Any]]
    children: Mapping[str, Table]  # "tag" / "param" / "metric" -> key/value table
    default_order: tuple[tuple[Column[Any], bool], ...]  # appended unless already used
    anti_join_ne: bool = False  # tag != 'v' also matches rows without the tag
    latest_metric: tuple[Any, ...] = ()  # how to pick one row of a multi-row metric table


def _attrs(columns: Mapping[str, Column[Any]], numeric: Collection[str] = (),
           ids: Collection[str] = (), lists: Collection[str] = ()) -> dict[str, _Attr]:
    def kind(name: str) -> str:
        return "num" if name in numeric else "id" if name in ids else "str"
    return {name: _Attr(col, kind(name), name in lists) for name, col in columns.items()}


_r = s.runs
_RUN_COLUMNS = {
    "run_id": _r.c.run_uuid, "run_name": _r.c.name, "run name": _r.c.name,
    "status": _r.c.status, "user_id": _r.c.user_id, "artifact_uri": _r.c.artifact_uri,
    "lifecycle_stage": _r.c.lifecycle_stage, "start_time": _r.c.start_time,
    "end_time": _r.c.end_time, "created": _r.c.start_time,
}
_RUNS = _Spec(
    "runs", _r, ("run_uuid",),
    _attrs(_RUN_COLUMNS, numeric={"start_time", "end_time", "created"}, lists={"run_id"}),
    {**_RUN_COLUMNS, "experiment_id": _r.c.experiment_id},
    {"tag": s.tags, "param": s.params, "metric": s.latest_metrics},
    ((_r.c.start_time, False), (_r.c.run_uuid, True)),
)

_e = s.experiments
_EXPERIMENT_COLUMNS = {
    "name": _e.c.name, "experiment_id": _e.c.experiment_id,
    "creation_time": _e.c.creation_time, "last_update_time": _e.c.last_update_time,
}
_EXPERIMENTS = _Spec(
    "experiments", _e, ("experiment_id",),
    _attrs(_EXPERIMENT_COLUMNS, numeric={"creation_time", "last_update_time"},
           ids={"experiment_id"}, lists={"experiment_id"}),
    _EXPERIMENT_COLUMNS, {"tag": s.experiment_tags},
    ((_e.c.creation_time, False), (_e.c.experiment_id, True)),
)

_rm = s.registered_models
_REGISTERED_MODELS = _Spec(
    "registered models", _rm, ("name",),
    _attrs({"name": _rm.c.name}, lists={"name"}),
    {"name": _rm.c.name, "creation_timestamp": _rm.c.creation_time,
     "timestamp": _rm.c.last_updated_time, "last_updated_timestamp": _rm.c.last_updated_time},
    {"tag": s.registered_model_tags}, ((_rm.c.name, True),), anti_join_ne=True,
)

_mv = s.model_versions
_MODEL_VERSIONS = _Spec(
    "model versions", _mv, ("name", "version"),
    _attrs({"name": _mv.c.name, "run_id": _mv.c.run_id, "source_path": _mv.c.source,
            "version_number": _mv.c.version}, numeric={"version_number"}, lists={"name", "run_id"}),
    {"name": _mv.c.name, "version_number": _mv.c.version,
     "creation_timestamp": _mv.c.creation_time, "last_updated_timestamp": _mv.c.last_updated_time},
    {"tag": s.model_version_tags},
    ((_mv.c.last_updated_time, False), (_mv.c.name, True), (_mv.c.version, False)),
    anti_join_ne=True,
)

_lm, _lmm = s.logged_models, s.logged_model_metrics
_LOGGED_MODEL_COLUMNS = {
    "name": _lm.c.name, "model_id": _lm.c.model_id, "model_type": _lm.c.model_type,
    "status": _lm.c.status, "source_run_id": _lm.c.source_run_id,
    "creation_timestamp": _lm.c.creation_timestamp_ms, "creation_time": _lm.c.creation_timestamp_ms,
    "last_updated_timestamp": _lm.c.last_updated_timestamp_ms,
    "last_updated_time": _lm.c.last_updated_timestamp_ms,
}
_LOGGED_MODELS = _Spec(
    "logged models", _lm, ("model_id",),
    _attrs(_LOGGED_MODEL_COLUMNS, lists={"name", "model_id", "model_type", "status",
                                         "source_run_id"},
           numeric={"creation_timestamp", "creation_time", "last_updated_timestamp",
                    "last_updated_time"}),
    _LOGGED_MODEL_COLUMNS,
    {"tag": s.logged_model_tags, "param": s.logged_model_params, "metric": _lmm},
    ((_lm.c.creation_timestamp_ms, False), (_lm.c.model_id, True)),
    # A model's metric may be logged at many steps, runs and datasets: sort by the latest.
    latest_metric=(_lmm.c.timestamp.desc(), _lmm.c.step.desc(), _lmm.c.run_uuid.asc()),
)

# --- value checks -----------------------------------------------------------------


def _ops(clause: Clause, allowed: frozenset[str], what: str) -> None:
    if clause.op not in allowed:
        raise clause.fail(f"{clause.op} is not allowed for {what}; use one of "
                          + " ".join(sorted(allowed)))


def _string(clause: Clause) -> str:
    if not isinstance(clause.value, str):
        raise clause.fail("the value must be a quoted string")
    if clause.op in ("LIKE", "ILIKE") and (len(clause.value) - len(clause.value.rstrip("\\"))) % 2:
        raise clause.fail("a LIKE pattern cannot end with a lone backslash (the escape character)")
    return clause.value


def _strings(clause: Clause) -> tuple[str, ...]:
    if not isinstance(clause.value, tuple) or not all(isinstance(v, str) for v in clause.value):
        raise clause.fail(f"{clause.op} needs a list of quoted strings, e.g. ('a', 'b')")
    return clause.value


def _number(clause: Clause) -> float | int:
    if isinstance(clause.value, (int, float)) and not isinstance(clause.value, bool):
        return clause.value
    raise clause.fail("the value must be a number (unquoted)")


def _integer(clause: Clause) -> int:
    value = clause.value
    if isinstance(value, str) and INTEGER.fullmatch(value.strip()):
        value = int(value)  # MLflow accepts version_number = '3'
    if not isinstance(value, int) or not -2**63 <= value < 2**63:
        raise clause.fail("the value must be an integer")
    return value


# --- conditions ---------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _text_compare(col: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    if op == "LIKE" or op == "ILIKE":
        return _PatternMatch(col, value, case_sensitive=op == "LIKE")
    if op == "IN":
        return col.in_(value)
    if op == "NOT IN":
        return col.not_in(value)
    return _COMPARE[op](col, value)


def _linked(spec: _Spec, child: Table) -> ColumnElement[bool]:
    return and_(*(child.c[name] == spec.parent.c[name] for name in spec.link))


def _exists(spec: _Spec, child: Any, *where: Any) -> ColumnElement[bool]:
    """EXISTS a row of ``child`` (a table or join) for the parent row, matching ``where``."""
    query = select(literal(1)).select_from(child).where(*where)
    return query.correlate(spec.parent).exists()


def _attribute(spec: _Spec, clause: Clause) -> ColumnElement[bool]:
    attr = spec.attrs.get(clause.key.lower())
    if attr is None:
        raise clause.fail(f"unknown attribute {clause.key!r} for {spec.noun}; "
                          f"valid: {', '.join(sorted(spec.attrs))}")
    name = f"attribute {clause.key!r}"
    if attr.kind == "num":
        _ops(clause, NUMERIC_OPS, name)
        return _COMPARE[clause.op](attr.column, _integer(clause))
    _ops(clause, TEXT_OPS | (LIST_OPS if attr.lists else frozenset()), name)
    if attr.kind == "id":
        return _id_compare(attr.column, clause)
    value = _strings(clause) if clause.op in LIST_OPS else _string(clause)
    return _text_compare(attr.column, clause.op, value)


def _id_compare(col: Column[Any], clause: Clause) -> ColumnElement[bool]:
    """Ids are strings on the wire and integers in the table; a non-integer id matches none."""
    if clause.op in ("LIKE", "ILIKE"):
        return _text_compare(cast(col, String), clause.op, _string(clause))
    listed = clause.op in LIST_OPS
    values = clause.value if listed else (clause.value,)
    if not isinstance(values, tuple) or not all(isinstance(v, (str, int)) for v in values):
        raise clause.fail("ids must be quoted strings or integers")
    ids = [int(v) for v in values if INTEGER.fullmatch(str(v).strip())]
    ids = [i for i in ids if -2**31 <= i < 2**31]
    if listed:
        return _text_compare(col, clause.op, ids)
    if not ids:
        return false() if clause.op == "=" else true()
    return _COMPARE[clause.op](col, ids[0])


def _key_value(spec: _Spec, clause: Clause) -> ColumnElement[bool]:
    """A tag or param clause."""
    child = spec.children.get(clause.entity)
    if child is None:
        raise clause.fail(f"{PLURAL[clause.entity]} cannot be searched for {spec.noun}")
    has_key = and_(_linked(spec, child), child.c.key == clause.key)
    if clause.op == "IS NULL":
        return ~_exists(spec, child, has_key)
    if clause.op == "IS NOT NULL":
        return _exists(spec, child, has_key)
    _ops(clause, TEXT_OPS | NULL_OPS, PLURAL[clause.entity])
    value = _string(clause)
    if clause.op == "!=" and spec.anti_join_ne:
        return ~_exists(spec, child, has_key, child.c.value == value)
    return _exists(spec, child, has_key, _text_compare(child.c.value, clause.op, value))


def _summary_column(spec: _Spec, child: Table, stat: str | None, fail: Callable[[str], Exception]) -> Any:
    """The column of ``metrics.<key>.min|max``: latest_metrics' min_value / max_value (None: value)."""
    if stat in (None, "last"):
        return None
    if child is not s.latest_metrics:
        raise fail(f"metric summaries (.{stat}) are kept for runs only, not for {spec.noun}")
    return child.c.min_value if stat == "min" else child.c.max_value


def _metric(spec: _Spec, clause: Clause, scope: Sequence[Any]) -> ColumnElement[bool]:
    child = spec.children.get("metric")
    if child is None:
        raise clause.fail(f"metrics cannot be searched for {spec.noun}")
    _ops(clause, NUMERIC_OPS, "metrics")
    summary = _summary_column(spec, child, clause.stat, clause.fail)
    if summary is not None:
        # min and max ignore NaN; a metric with only NaN has none (NULL): unequal to everything.
        compare = _COMPARE[clause.op](summary, float(_number(clause)))
        compare = or_(summary.is_(None), compare) if clause.op == "!=" else and_(summary.is_not(None), compare)
        return _exists(spec, child, _linked(spec, child), child.c.key == clause.key, compare, *scope)
    compare = _COMPARE[clause.op](child.c.value, float(_number(clause)))
    # NaN is stored as 0 with is_nan set: unequal to everything, false otherwise.
    if clause.op == "!=":
        compare = or_(child.c.is_nan == true(), compare)
    else:
        compare = and_(child.c.is_nan == false(), compare)
    return _exists(spec, child, _linked(spec, child), child.c.key == clause.key, compare, *scope)


def _dataset(spec: _Spec, clause: Clause) -> ColumnElement[bool]:
    """``datasets.name|digest|context``: some dataset input of the run matches."""
    if spec is not _RUNS:
        raise clause.fail(f"datasets cannot be searched for {spec.noun}")
    _ops(clause, TEXT_OPS | LIST_OPS, "datasets")
    value = _strings(clause) if clause.op in LIST_OPS else _string(clause)
    key = clause.key.lower()
    if key == "context":
        t = s.input_tags
        return _exists(spec, t, _linked(spec, t), t.c.key == "mlflow.data.context",
                       _text_compare(t.c.value, clause.op, value))
    if key not in ("name", "digest"):
        raise clause.fail(f"unknown dataset field {clause.key!r}; valid: name, digest, context")
    ri, d = s.run_inputs, s.datasets
    joined = ri.join(d, ri.c.dataset_uuid == d.c.dataset_uuid)
    return _exists(spec, joined, _linked(spec, ri), _text_compare(d.c[key], clause.op, value))


def _conditions(spec: _Spec, filter_string: str | None,
                metric_scope: Sequence[Any] = ()) -> list[ColumnElement[bool]]:
    out = []
    for clause in parse_filter(filter_string):
        if clause.entity == "attribute":
            out.append(_attribute(spec, clause))
        elif clause.entity == "metric":
            out.append(_metric(spec, clause, metric_scope))
        elif clause.entity == "dataset":
            out.append(_dataset(spec, clause))
        else:
            out.append(_key_value(spec, clause))
    return out


# --- order_by -----------------------------------------------------------------------


def _sorted_column(col: ColumnElement[Any], ascending: bool, nullable: bool) -> list[Any]:
    """``col`` in the given direction with NULLs last.

    NULLS LAST (SQLite 3.30+, PostgreSQL) rather than a CASE before the column: on
    SQLite ``DESC NULLS LAST`` is the index's own order, so the default newest-first
    order of runs is read from ``ix_runs_experiment_order`` without a sort.
    """
    ordered = col.asc() if ascending else col.desc()
    return [ordered.nulls_last()] if nullable else [ordered]


def _sorted_child(spec: _Spec, child: Table, order: OrderKey) -> list[Any]:
    """Sort by the value of one tag/param/metric key; a missing key (and NaN) goes last."""
    where: list[Any] = [_linked(spec, child), child.c.key == order.key]
    is_metric = child is spec.children.get("metric")
    if is_metric and order.dataset_name:
        where.append(child.c.dataset_name == order.dataset_name)
    if is_metric and order.dataset_digest:
        where.append(child.c.dataset_digest == order.dataset_digest)

    def one(column: Any) -> Any:
        query = select(column).where(*where).correlate(spec.parent)
        if is_metric and spec.latest_metric:
            query = query.order_by(*spec.latest_metric).limit(1)
        return query.scalar_subquery()

    if not is_metric:
        return _sorted_column(one(child.c.value), order.ascending, nullable=True)
    summary = _summary_column(spec, child, order.stat,
                              lambda m: InvalidParameterValue(f"Invalid order_by {order.key!r}: {m}"))
    if summary is not None:  # a min or max: NULL (only NaN) after the numbers, then no row
        value = one(summary)
        rank = func.coalesce(one(case((summary.is_(None), 1), else_=0)), 2)
        return [rank.asc(), value.asc() if order.ascending else value.desc()]
    value = one(child.c.value)
    # 0 for a number, 1 for NaN, 2 (no row) for a missing key.
    rank = func.coalesce(one(case((child.c.is_nan == true(), 1), else_=0)), 2)
    return [rank.asc(), value.asc() if order.ascending else value.desc()]


def _order_by(spec: _Spec, entries: Sequence[Any] | None) -> list[ColumnElement[Any]]:
    out: list[Any] = []
    used: set[tuple[str, str]] = set()
    for entry in entries or []:
        order = parse_order(entry)
        if order.entity == "attribute":
            col = spec.order_attrs.get(order.key.lower())
            if col is None:
                raise InvalidParameterValue(
                    f"Invalid order_by {entry!r}: unknown attribute {order.key!r} for "
                    f"{spec.noun}; valid: {', '.join(sorted(spec.order_attrs))}")
            mark = ("attribute", col.name)
            clauses = _sorted_column(col, order.ascending, bool(col.nullable))
        elif order.entity in spec.children:
            mark = (order.entity, order.key if order.stat in (None, "last") else f"{order.key}\0{order.stat}")
            clauses = _sorted_child(spec, spec.children[order.entity], order)
        else:
            raise InvalidParameterValue(
                f"Invalid order_by {entry!r}: cannot sort {spec.noun} by {order.entity}s")
        if mark in used:
            raise InvalidParameterValue(f"Invalid order_by {entries!r}: {entry!r} sorts twice "
                                        "by the same field")
        used.add(mark)
        out += clauses
    for col, ascending in spec.default_order:  # defaults, then a unique tiebreaker
        if ("attribute", col.name) not in used:
            out += _sorted_column(col, ascending, bool(col.nullable))
    return out


# --- public API ---------------------------------------------------------------------


def lifecycle(column: Any, view_type: str | None) -> list[Any]:
    """The condition on ``column`` (a lifecycle_stage) for MLflow's view type."""
    view = view_type or "ACTIVE_ONLY"
    if view not in VIEW_TYPES:
        raise InvalidParameterValue(f"Invalid view_type '{view}'")
    if view == "ACTIVE_ONLY":
        return [column == "active"]
    if view == "DELETED_ONLY":
        return [column == "deleted"]
    return []


def run_conditions(filter_string: str | None) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``schema.runs`` for an MLflow runs filter string.

    Entities: metrics (latest value), params, tags, attributes (run_id, run_name,
    status, user_id, artifact_uri, lifecycle_stage, start_time, end_time, created)
    and datasets (name, digest, context).  Raises :class:`InvalidParameterValue`.
    """
    return _conditions(_RUNS, filter_string)


def run_order_by(order_by: Sequence[str] | None) -> list[ColumnElement[Any]]:
    """ORDER BY expressions on ``schema.runs``; default ``start_time DESC, run_id ASC``.

    Each entry is ``"<ident> [ASC|DESC]"`` over metrics, params, tags or
    attributes.  ``start_time DESC`` and ``run_uuid ASC`` are appended as
    tiebreakers unless already used, so paging by offset is stable.
    """
    return _order_by(_RUNS, order_by)


def experiment_conditions(filter_string: str | None) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``schema.experiments``: name, experiment_id (IN allowed),
    creation_time, last_update_time and tags."""
    return _conditions(_EXPERIMENTS, filter_string)


def experiment_order_by(order_by: Sequence[str] | None) -> list[ColumnElement[Any]]:
    """ORDER BY on ``schema.experiments``; default ``creation_time DESC, experiment_id ASC``."""
    return _order_by(_EXPERIMENTS, order_by)


def registered_model_conditions(filter_string: str | None) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``schema.registered_models``: name (IN allowed) and tags.

    ``tags.k != 'v'`` also matches models without the tag (reference §2.4).
    """
    return _conditions(_REGISTERED_MODELS, filter_string)


def registered_model_order_by(order_by: Sequence[str] | None) -> list[ColumnElement[Any]]:
    """ORDER BY on ``schema.registered_models`` (name, creation_timestamp,
    last_updated_timestamp or timestamp); default and tiebreaker ``name ASC``."""
    return _order_by(_REGISTERED_MODELS, order_by)


def model_version_conditions(filter_string: str | None) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``schema.model_versions``: name and run_id (IN allowed),
    source_path, version_number (numeric) and tags (``!=`` matches untagged ones)."""
    return _conditions(_MODEL_VERSIONS, filter_string)


def model_version_order_by(order_by: Sequence[str] | None) -> list[ColumnElement[Any]]:
    """ORDER BY on ``schema.model_versions``; default
    ``last_updated_timestamp DESC, name ASC, version_number DESC``."""
    return _order_by(_MODEL_VERSIONS, order_by)


def logged_model_conditions(
    filter_string: str | None,
    datasets: Sequence[Mapping[str, str]] | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``schema.logged_models``.

    Attributes name, model_id, model_type, status, source_run_id (IN allowed),
    creation_timestamp and last_updated_timestamp; ``metrics.`` (any logged value
    matches), ``params.`` and ``tags.``.  ``datasets`` (``[{"dataset_name",
    "dataset_digest"?}]``, as in the search request) limits metric clauses to
    those datasets, and without metric clauses keeps models with a metric on one.
    """
    scope: list[Any] = []
    if datasets:
        scope.append(or_(*(
            and_(_lmm.c.dataset_name == d.get("dataset_name"),
                 *([_lmm.c.dataset_digest == d["dataset_digest"]]
                   if d.get("dataset_digest") else []))
            for d in datasets)))
    out = _conditions(_LOGGED_MODELS, filter_string, scope)
    if scope and not any(c.entity == "metric" for c in parse_filter(filter_string)):
        out.append(_exists(_LOGGED_MODELS, _lmm, _linked(_LOGGED_MODELS, _lmm), *scope))
    return out


def logged_model_order_by(
    order_by: Sequence[str | Mapping[str, Any]] | None,
) -> list[ColumnElement[Any]]:
    """ORDER BY on ``schema.logged_models``; default ``creation_timestamp DESC, model_id ASC``.

    Entries are strings as for runs, or the REST form ``{"field_name",
    "ascending", "dataset_name", "dataset_digest"}``; ``metrics.<k>`` sorts by the
    model's latest value of ``k`` (on that dataset, if given).
    """
    return _order_by(_LOGGED_MODELS, order_by)

"""Tracking endpoints (reference §2.1–2.3): parse, call the store, render."""

from __future__ import annotations

import itertools
import json
import math
import time
from json.encoder import encode_basestring_ascii as _json_text
from collections.abc import Iterator, Sequence
from typing import Any

from labtrack import columns
from labtrack.entities import DatasetInput, Metric, MetricSeries
from labtrack.errors import InvalidParameterValue
from labtrack.limits import LIMITS
from labtrack.server.args import Args
from labtrack.server.base import RawJson, ServerContext, StreamedJson, on_writer
from labtrack.server.early_answer import EarlyWrite
from labtrack.server.read_ahead import read_ahead
from labtrack.server.search_cache import search_cache
from labtrack.store.artifact_locations import check_artifact_location
from labtrack.store.validation import check_key


def _tags(a: Args, name: str = "tags") -> dict[str, str]:
    return dict(a.key_values(name))


def _page(items: list[dict[str, Any]], name: str, token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {name: items}
    if token:
        out["next_page_token"] = token
    return out


# -- experiments ----------------------------------------------------------------

def create_experiment(ctx: ServerContext, a: Args) -> dict[str, Any]:
    location = check_artifact_location(a.str("artifact_location"), ctx.store.default_artifact_root)
    exp_id = ctx.store.create_experiment(a.req("name"), location, _tags(a))
    return {"experiment_id": exp_id}


def get_experiment(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"experiment": ctx.store.get_experiment(a.req("experiment_id")).to_json()}


def get_experiment_by_name(ctx: ServerContext, a: Args) -> dict[str, Any]:
    exp = ctx.store.get_experiment_by_name(a.req("experiment_name"), caller_may_create=True)
    return {"experiment": exp.to_json()}


def search_experiments(ctx: ServerContext, a: Args) -> dict[str, Any]:
    exps, token = ctx.store.search_experiments(
        view_type=a.view_type("view_type"), max_results=a.int("max_results"),
        filter_string=a.str("filter"), order_by=a.str_list("order_by"), page_token=a.str("page_token"))
    return _page([e.to_json() for e in exps], "experiments", token)


def update_experiment(ctx: ServerContext, a: Args) -> dict[str, Any]:
    new_name = a.str("new_name")
    if new_name is not None:
        ctx.store.rename_experiment(a.req("experiment_id"), new_name)
    return {}


def delete_experiment(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.delete_experiment(a.req("experiment_id"))
    return {}


def restore_experiment(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.restore_experiment(a.req("experiment_id"))
    return {}


def set_experiment_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.set_experiment_tag(a.req("experiment_id"), a.req("key"), a.str("value", required=True))
    return {}


def delete_experiment_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.delete_experiment_tag(a.req("experiment_id"), a.req("key"))
    return {}


# -- runs ---------------------------------------------------------------------

@on_writer
def create_run(ctx: ServerContext, a: Args) -> dict[str, Any]:
    run = ctx.store.create_run(
        experiment_id=a.str("experiment_id") or "0", user_id=a.str("user_id") or "",
        start_time=a.int("start_time"), run_name=a.str("run_name"), tags=_tags(a))
    return {"run": run.to_json()}


def get_run(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"run": ctx.store.get_run(a.run_id()).to_json()}


@on_writer
def update_run(ctx: ServerContext, a: Args) -> dict[str, Any]:
    status = _status(a)
    info = ctx.store.update_run(a.run_id(), status=status, end_time=a.int("end_time"),
                                run_name=a.str("run_name"))
    return {"run_info": info.to_json()}


def _status(a: Args) -> str | None:
    value = a.data.get("status")
    if isinstance(value, list):
        value = value[-1]
    if value is None or value == "":
        return None
    names = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return names[value - 1]
    if isinstance(value, str) and value in names:
        return value
    raise InvalidParameterValue(f"Invalid value {value!r} for parameter 'status'")


def delete_run(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.delete_run(a.run_id())
    return {}


def restore_run(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.restore_run(a.run_id())
    return {}


_INT64 = 2**63


def _metric(item: dict[str, Any] | Args) -> Metric:
    if type(item) is dict:
        # The shape every client sends ({key, value: number, timestamp, step}),
        # taken without the general checks: a log_batch carries 1,000 of them.
        # Anything else falls through to the general path and its error messages.
        key, value, ts, step = item.get("key"), item.get("value"), item.get("timestamp"), item.get("step", 0)
        if (type(key) is str and key and type(value) is float and type(ts) is int and -_INT64 <= ts < _INT64
                and type(step) is int and -_INT64 <= step < _INT64
                and item.get("model_id") is None and item.get("dataset_name") is None
                and item.get("dataset_digest") is None):
            return Metric(key=key, value=value, timestamp=ts, step=step)
    a = item if isinstance(item, Args) else Args(item)
    key = a.str("key", required=True)
    timestamp = a.int("timestamp")
    if timestamp is None:
        timestamp = int(time.time() * 1000)
    return Metric(key=key or "", value=a.double("value"), timestamp=timestamp,
                  step=a.int("step", default=0) or 0, model_id=a.str("model_id"),
                  dataset_name=a.str("dataset_name"), dataset_digest=a.str("dataset_digest"))


@on_writer
def log_metric(ctx: ServerContext, a: Args) -> dict[str, Any]:
    # A JSON body takes _metric's fast path for the shape every client sends.
    ctx.store.log_batch(a.run_id(), metrics=[_metric(a if a.from_query else a.data)])
    return {}


def _early_log_metric(ctx: ServerContext, a: Args, body: bytes | None) -> EarlyWrite | None:
    """``log_metric`` planned for an early answer (server/early_answer.py): a point without
    model or dataset links.  The journal holds the point as stored (its timestamp resolved)."""
    if a.from_query:
        return None
    m = _metric(a.data)
    if m.model_id is not None or m.dataset_name is not None or m.dataset_digest is not None:
        return None
    run_id = a.run_id()
    return EarlyWrite(run_id, ctx.store.log_batch_op(run_id, metrics=[m]), lambda: _batch_of_one(run_id, m))


def _batch_of_one(run_id: str, m: Metric) -> bytes:
    """A log_batch record's fields holding one point, as json.dumps writes them, formatted directly."""
    value = m.value
    number = repr(value) if math.isfinite(value) else ("NaN" if value != value else "Infinity" if value > 0
                                                       else "-Infinity")  # Python's json reads these
    return ('{"run_id":%s,"metrics":[{"key":%s,"value":%s,"timestamp":%d,"step":%d}]}'
            % (_json_text(run_id), _json_text(m.key), number, m.timestamp, m.step)).encode()


log_metric.early = _early_log_metric  # type: ignore[attr-defined]


@on_writer
def log_param(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.log_batch(a.run_id(), params=[(a.req("key"), a.str("value", required=True) or "")])
    return {}


@on_writer
def set_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.log_batch(a.run_id(), tags=[(a.req("key"), a.str("value", required=True) or "")])
    return {}


@on_writer
def delete_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.store.delete_tag(a.run_id(), a.req("key"))
    return {}


def _plain_series(items: list[Any]) -> list[MetricSeries] | None:
    """A log-batch's metrics as one series per key, in the order they came, when every item
    has the shape every client sends: exactly {key: a valid name, value: float,
    timestamp: int >= 0, step: int}, in int64.  Building three lists costs a fifth of a
    Metric per point, and whole columns are checked at once in C.  None sends the batch
    down the per-point path, so a bad batch gets the same error as before, in the same order."""
    by_key: dict[Any, MetricSeries] = {}
    try:
        for item in items:
            if len(item) != 4:
                return None
            key = item["key"]
            s_ = by_key.get(key)
            if s_ is None:
                check_key("metric", key)
                s_ = by_key[key] = MetricSeries(key, [], [], [])
            s_.steps.append(item["step"])
            s_.timestamps.append(item["timestamp"])
            s_.values.append(item["value"])
    except (KeyError, TypeError, InvalidParameterValue):  # a missing field, a bad key
        return None
    for s_ in by_key.values():
        if not (set(map(type, s_.values)) <= {float}
                and set(map(type, s_.steps)) <= {int} and set(map(type, s_.timestamps)) <= {int}
                and min(s_.timestamps) >= 0 and max(s_.timestamps) < _INT64
                and min(s_.steps) >= -_INT64 and max(s_.steps) < _INT64):
            return None
    return list(by_key.values())


@on_writer
def log_batch(ctx: ServerContext, a: Args) -> dict[str, Any]:
    items = a.objects("metrics")
    series = _plain_series(items)
    metrics = [_metric(m) for m in items] if series is None else []
    run_id, params, tags = a.run_id(), a.key_values("params"), a.key_values("tags")
    if series is not None and not _within_limits(len(items), len(params), len(tags)):
        metrics, series = [_metric(m) for m in items], None  # the store names the limit
    ctx.store.log_batch(run_id, metrics=metrics, params=params, tags=tags, series=series or ())
    return {}


_BATCH_FIELDS = frozenset({"run_id", "run_uuid", "metrics", "params", "tags"})


def _early_log_batch(ctx: ServerContext, a: Args, body: bytes | None) -> EarlyWrite | None:
    """``log_batch`` planned for an early answer: plain metrics only (a param may fail in the
    database: a changed value).  The journal holds the request's body as it came when it can
    (ASCII, only a batch's fields, ``run_id`` named), which costs no second JSON encoding."""
    if a.from_query or a.data.get("params") or a.data.get("tags"):
        return None
    items = a.objects("metrics")
    series = _plain_series(items)
    if not series or not _within_limits(len(items), 0, 0):
        return None
    run_id = a.run_id()

    def fields() -> bytes:
        if (body is not None and a.data.get("run_id") == run_id and body.isascii()
                and body.lstrip()[:1] == b"{" and _BATCH_FIELDS.issuperset(a.data)):
            # Newlines are only whitespace in valid JSON: a line per record.
            return body.replace(b"\n", b" ").replace(b"\r", b" ")
        return json.dumps({"run_id": run_id, "metrics": items}, separators=(",", ":")).encode()
    return EarlyWrite(run_id, ctx.store.log_batch_op(run_id, series=series), fields)


log_batch.early = _early_log_batch  # type: ignore[attr-defined]


def _within_limits(metrics: int, params: int, tags: int) -> bool:
    """A log-batch's sizes within MLflow's limits: only then may its metrics go as series
    (whose own limit is log-series's, 100 times larger)."""
    return (metrics <= LIMITS["batch_metrics"] and params <= LIMITS["batch_params"]
            and tags <= LIMITS["batch_tags"] and metrics + params + tags <= LIMITS["batch_total"])


@on_writer
def log_inputs(ctx: ServerContext, a: Args) -> dict[str, Any]:
    datasets = []
    for item in a.objects("datasets"):
        ds = item.get("dataset")
        if not isinstance(ds, dict):
            raise InvalidParameterValue("Each dataset input needs a 'dataset' object")
        for f in ("name", "digest", "source_type", "source", "schema", "profile"):
            if ds.get(f) is not None and not isinstance(ds.get(f), str):
                raise InvalidParameterValue(f"Dataset field '{f}' must be a string")
        datasets.append(DatasetInput.from_json(item))
    models = [m.get("model_id") for m in a.objects("models")]
    if any(not isinstance(m, str) or not m for m in models):
        raise InvalidParameterValue("Each model input needs a 'model_id' string")
    ctx.store.log_inputs(a.run_id(), datasets, models)
    return {}


@on_writer
def log_outputs(ctx: ServerContext, a: Args) -> dict[str, Any]:
    models = []
    for m in a.objects("models"):
        mid = m.get("model_id")
        if not isinstance(mid, str) or not mid:
            raise InvalidParameterValue("Each model output needs a 'model_id' string")
        models.append((mid, Args(m).int("step", default=0) or 0))
    ctx.store.log_outputs(a.run_id(), models)
    return {}


def log_model_legacy(ctx: ServerContext, a: Args) -> dict[str, Any]:
    # MLflow 2's runs/log-model only records a tag; MLflow 3 never calls it.
    a.run_id()
    return {}


def search_runs(ctx: ServerContext, a: Args) -> RawJson:
    exp_ids, filter_string, view_type = a.str_list("experiment_ids"), a.str("filter"), a.view_type("run_view_type")
    max_results, order_by, page_token = a.int("max_results"), a.str_list("order_by"), a.str("page_token")

    def make() -> str:
        runs, token = ctx.store.search_runs_text(
            experiment_ids=exp_ids, filter_string=filter_string, view_type=view_type, max_results=max_results,
            order_by=order_by, page_token=page_token)
        # A page of 1,000 runs is most of the work: written as text from the rows, no objects.
        more = ',"next_page_token":' + json.dumps(token) if token else ""
        return '{"runs":[' + ",".join(runs) + "]" + more + "}"
    key = ("runs/search", tuple(exp_ids), filter_string, view_type, max_results, tuple(order_by or ()), page_token)
    return RawJson(search_cache(ctx).answer(key, make))


_SPECIAL = {math.inf: '"Infinity"', -math.inf: '"-Infinity"'}


def _points_json(key: str, rows: Sequence[Any], run_id: str | None = None) -> list[str]:
    """Rows of ``metrics.HISTORY_FIELDS`` as JSON objects, exactly as ``Metric.to_json`` renders them.

    A 100,000-point history is 100,000 objects: building a Metric and a dict for
    each costs more than the database read, so the text is written directly.
    """
    head = '{"key":' + json.dumps(key) + ',"value":'
    tail_run = ',"run_id":' + json.dumps(run_id) if run_id is not None else ""
    out = []
    for step, timestamp, value, is_nan, model_id, ds_name, ds_digest in rows:
        v = '"NaN"' if is_nan else _SPECIAL.get(value) or repr(value)
        item = f'{head}{v},"timestamp":{timestamp},"step":{step}{tail_run}'
        if model_id is not None or ds_name is not None or ds_digest is not None:
            for name, x in (("model_id", model_id), ("dataset_name", ds_name), ("dataset_digest", ds_digest)):
                if x is not None:
                    item += f',"{name}":{json.dumps(x)}'
        out.append(item + "}")
    return out


# Points of a get-history page rendered at a time: a page asked for beyond this (max_results
# may be up to 10**9) is streamed in slices of it, so the server's memory does not grow with
# the history's length (issue 21).
HISTORY_SLICE = 25000


def get_metric_history(ctx: ServerContext, a: Args) -> RawJson | StreamedJson:
    key = a.req("metric_key")
    max_results = a.int("max_results")
    if max_results is not None and max_results > HISTORY_SLICE:
        return _streamed_history(ctx, a, key, max_results)
    run_id, page_token = a.run_id(), a.str("page_token")
    ahead = read_ahead(ctx)
    page = ahead.take(("get-history", run_id, key, max_results, page_token))
    if page is None:
        page = _history_page(ctx, run_id, key, max_results, page_token)
    text, token = page
    if token:  # a pager (the mlflow client): the next page is made while it parses this one
        ahead.start(("get-history", run_id, key, max_results, token),
                    lambda: _history_page(ctx, run_id, key, max_results, token))
    return RawJson(text)


def _history_page(ctx: ServerContext, run_id: str, key: str, max_results: int | None,
                  page_token: str | None) -> tuple[str, str | None]:
    rows, token = ctx.store.get_metric_history_rows(run_id, key, max_results, page_token)
    more = ',"next_page_token":' + json.dumps(token) if token else ""
    return '{"metrics":[' + ",".join(_points_json(key, rows)) + "]" + more + "}", token


def _streamed_history(ctx: ServerContext, a: Args, key: str, max_results: int) -> StreamedJson:
    """The same text as a page read at once, written one slice of ``HISTORY_SLICE`` points at a time."""
    slices = ctx.store.metric_history_slices(a.run_id(), key, max_results, a.str("page_token"), HISTORY_SLICE)
    first = next(slices)  # here, not in the stream: a missing run is still MLflow's error reply

    def parts() -> Iterator[str]:
        item, sep = first, ""
        while isinstance(item, list):
            if item:
                yield sep + ",".join(_points_json(key, item))
                sep = ","
            item = next(slices)
        yield "]" + (',"next_page_token":' + json.dumps(item) if item else "") + "}"

    body = parts()
    return StreamedJson(itertools.chain(['{"metrics":['], body), close=slices.close)


def history_columns(ctx: ServerContext, a: Args) -> RawJson:
    """``metrics/get-history``'s page column by column, packed as ``runs/log-series`` takes them.

    ``{"steps", "timestamps", "values"}`` (base64 of little-endian int64, int64,
    float64; see ``labtrack.columns``), ``"model_ids"``, ``"dataset_names"`` and
    ``"dataset_digests"`` (lists) only when a point of the page has one, and
    ``next_page_token``.  labtrack's client reads histories this way: parsing
    100,000 JSON objects cost it more than the server's whole reply.
    """
    rows, token = ctx.store.get_metric_history_rows(a.run_id(), a.req("metric_key"), a.int("max_results"),
                                                    a.str("page_token"))
    steps, timestamps, values, is_nan, model_ids, names, digests = zip(*rows) if rows else ((),) * 7
    if any(is_nan):
        values = tuple(math.nan if nan else v for v, nan in zip(values, is_nan))
    # base64 needs no JSON escaping: the packed columns go into the text as they are.
    text = (f'{{"steps":"{columns.pack(columns.STEP, steps)}",'
            f'"timestamps":"{columns.pack(columns.STEP, timestamps)}",'
            f'"values":"{columns.pack(columns.VALUE, values)}"')
    for name, column in (("model_ids", model_ids), ("dataset_names", names), ("dataset_digests", digests)):
        if column.count(None) < len(column):
            text += f',"{name}":{json.dumps(column)}'
    if token:
        text += f',"next_page_token":{json.dumps(token)}'
    return RawJson(text + "}")


def get_metric_history_bulk_interval(ctx: ServerContext, a: Args) -> dict[str, Any]:
    points = ctx.store.get_metric_history_bulk_interval(
        a.str_list("run_ids"), a.req("metric_key"), a.int("start_step"), a.int("end_step"),
        a.int("max_results", default=2500) or 2500)
    return {"metrics": [m.to_json() for m in points]}


def get_metric_history_bulk(ctx: ServerContext, a: Args) -> RawJson:
    limit = a.int("max_results", default=25000) or 25000
    out: list[str] = []
    for run_id in a.str_list("run_id"):
        key = a.req("metric_key")
        rows, _ = ctx.store.get_metric_history_rows(run_id, key, limit, None)
        out += _points_json(key, rows, run_id)
    return RawJson('{"metrics":[' + ",".join(out) + "]}")


def search_datasets(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"dataset_summaries": ctx.store.search_datasets(a.str_list("experiment_ids"))}


# -- labtrack's own -------------------------------------------------------------

def log_series(ctx: ServerContext, a: Args) -> dict[str, Any]:
    """``runs/log-batch`` with metrics column by column and up to 100,000 points.

    ``{"run_id", "series": [{"key", "steps", "timestamps", "values"}], "params", "tags"}``:
    the background sender's bulk form, atomic like log-batch.  A column is a JSON
    array, or a string of base64 holding little-endian int64 (steps, timestamps)
    or float64 (values): parsing numbers from JSON text would cost the server as
    much as storing them.
    """
    series = [MetricSeries(key=item.get("key"), steps=_column(item, "steps", columns.STEP),
                           timestamps=_column(item, "timestamps", columns.STEP), values=_column(item, "values", columns.VALUE))
              for item in a.objects("series")]
    ctx.store.log_batch(a.run_id(), params=a.key_values("params"), tags=a.key_values("tags"), series=series)
    return {}


def _column(item: dict[str, Any], name: str, typecode: str) -> Any:
    try:
        return columns.column(item.get(name), typecode)
    except ValueError:
        raise InvalidParameterValue(
            f"Metric {str(item.get('key'))[:250]!r}: '{name}' is neither a list nor base64 of little-endian "
            f"{'int64' if typecode == columns.STEP else 'float64'} values") from None


def history_downsampled(ctx: ServerContext, a: Args) -> dict[str, Any]:
    points, total = ctx.store.downsampled_history(
        a.run_id(), a.req("metric_key"), a.int("max_points", default=2000) or 2000,
        a.int("min_step"), a.int("max_step"))
    for p in points:
        p["value"] = Metric(key="", value=p["value"], timestamp=0).to_json()["value"]
    from labtrack.store.downsample import COUNT_CAP

    # A window of more than COUNT_CAP points is not counted further: "total" is then a lower bound.
    return {"metrics": points, "total": total, "total_exact": total <= COUNT_CAP, "downsampled": total > len(points)}


def experiment_activity(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"experiments": ctx.store.experiment_activity()}


def status(ctx: ServerContext, a: Args) -> dict[str, Any]:
    counts = ctx.store.count_runs()
    return {"runs_by_status": counts, "active_runs": counts.get("RUNNING", 0)}


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("experiments/create", {"POST": create_experiment}),
    ("experiments/get", {"GET": get_experiment}),
    ("experiments/get-by-name", {"GET": get_experiment_by_name}),
    ("experiments/search", {"POST": search_experiments, "GET": search_experiments}),
    ("experiments/update", {"POST": update_experiment}),
    ("experiments/delete", {"POST": delete_experiment}),
    ("experiments/restore", {"POST": restore_experiment}),
    ("experiments/set-experiment-tag", {"POST": set_experiment_tag}),
    ("experiments/delete-experiment-tag", {"POST": delete_experiment_tag}),
    ("experiments/search-datasets", {"POST": search_datasets}),
    ("runs/create", {"POST": create_run}),
    ("runs/get", {"GET": get_run}),
    ("runs/update", {"POST": update_run}),
    ("runs/delete", {"POST": delete_run}),
    ("runs/restore", {"POST": restore_run}),
    ("runs/log-metric", {"POST": log_metric}),
    ("runs/log-parameter", {"POST": log_param}),
    ("runs/set-tag", {"POST": set_tag}),
    ("runs/delete-tag", {"POST": delete_tag}),
    ("runs/log-batch", {"POST": log_batch}),
    ("runs/log-inputs", {"POST": log_inputs}),
    ("runs/outputs", {"POST": log_outputs}),
    ("runs/log-model", {"POST": log_model_legacy}),
    ("runs/search", {"POST": search_runs, "GET": search_runs}),
    ("metrics/get-history", {"GET": get_metric_history}),
    ("metrics/get-history-bulk-interval", {"GET": get_metric_history_bulk_interval}),
    ("metrics/get-history-bulk", {"GET": get_metric_history_bulk}),
]

LABTRACK_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("runs/log-series", {"POST": log_series}),
    ("metrics/history-downsampled", {"GET": history_downsampled}),
    ("metrics/history-columns", {"GET": history_columns}),
    ("status", {"GET": status}),
    ("experiments/activity", {"GET": experiment_activity}),
]

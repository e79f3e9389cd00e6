"""Downloads of the runs table and of metric histories, as CSV or Parquet (issue 20).

``/api/2.0/labtrack/runs/export`` writes the runs an MLflow filter finds, in the
order asked, with the columns asked (the web UI's column ids: ``attr.start``,
``metrics.loss``, ``params.lr``...) or with every column, laid out as
``lt.search_runs(output_format="pandas")`` lays them out (``client.run_table``).
``/api/2.0/labtrack/runs/export-histories`` writes the full histories of given
runs as one long table: run_id, run_name, key, step, timestamp, value, the columns
of ``lt.get_metric_histories`` plus the run's name.

Both answer GET (query fields) and POST (a JSON body), and stream: a page of
runs or of points is read on a worker, written out, and only then the next one
is read.  Parquet needs pyarrow (``labtrack[parquet]``), imported when asked for.
On a basic-auth server the user needs READ on every experiment involved.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from labtrack.errors import InvalidParameterValue, require_extra
from labtrack.server.args import Args
from labtrack.server.base import BaseHandler, ServerContext, request_args

PAGE = 1000  # runs per page read from the store
POINTS_PAGE = 50_000  # history points per page
MAX_HISTORY_RUNS = 1000
FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}

# The web UI's attribute columns, as the export names them and reads them from a run.
ATTRIBUTES: dict[str, tuple[str, Any]] = {
    "attr.id": ("run_id", lambda r: r.info.run_id),
    "attr.name": ("run_name", lambda r: r.info.run_name or r.tags.get("mlflow.runName") or ""),
    "attr.status": ("status", lambda r: r.info.status),
    "attr.start": ("start_time", lambda r: r.info.start_time),
    "attr.duration": ("duration_s", lambda r: _duration(r)),
    "attr.user": ("user_id", lambda r: r.info.user_id or ""),
    "attr.experiment": ("experiment_id", lambda r: r.info.experiment_id),
    "attr.source": ("tags.mlflow.source.name", lambda r: r.tags.get("mlflow.source.name")),
    "attr.version": ("tags.mlflow.source.git.commit", lambda r: r.tags.get("mlflow.source.git.commit")),
}
TIMES = {"start_time", "end_time", "timestamp"}


def _duration(run: Any) -> float | None:
    start, end = run.info.start_time, run.info.end_time
    return (end - start) / 1000 if start is not None and end is not None else None


def _list(a: Args, name: str) -> list[str]:
    """A list field: repeated, a JSON list, or one comma-separated string (a query)."""
    out: list[str] = []
    for v in a.list(name):
        if not isinstance(v, str):
            raise InvalidParameterValue(f"Invalid value {v!r} in '{name}': expected strings")
        out += [x.strip() for x in v.split(",")] if a.from_query else [v]
    return [x for x in out if x]


def _format(a: Args) -> str:
    fmt = (a.str("format") or "csv").lower()
    if fmt not in FORMATS:
        raise InvalidParameterValue(f"Invalid value '{fmt}' for parameter 'format': expected csv or parquet")
    return fmt


class Column:
    """One output column: its name, its Parquet type, how to read it from a run."""

    def __init__(self, name: str, get: Any, kind: str | None = None) -> None:
        self.name = name
        self.get = get
        self.kind = kind or ("time" if name in TIMES else "number" if name.startswith("metrics.") or name == "duration_s"
                             else "string")


class Summaries:
    """The metric summaries (min, max, last and their steps) of the page of runs being written."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.page: dict[str, dict[str, dict[str, Any]]] = {}

    def read(self, store: Any, runs: list[Any]) -> None:
        if self.keys and runs:
            from labtrack.store.metric_summaries import summaries

            ids = [r.info.run_id for r in runs]
            self.page = store.read(lambda conn: summaries(conn, ids, self.keys))[0]

    def getter(self, stat: str, key: str) -> Any:
        if key not in self.keys:
            self.keys.append(key)
        return lambda r: (self.page.get(r.info.run_id, {}).get(key) or {}).get(stat)


SUMMARY_STATS = ("min", "max", "last", "min_step", "max_step", "last_step")


def chosen_columns(ids: list[str], sums: Summaries | None = None) -> list[Column]:
    """The columns of the web UI's column ids; run_id first whether shown or not.

    ``summary.<stat>.<key>`` (stat: min, max, last, min_step, max_step, last_step) is a
    summary of the metric's whole history, written as ``metrics.<key>.<stat>``.
    """
    sums = sums if sums is not None else Summaries()
    out = [Column("run_id", lambda r: r.info.run_id)]
    seen = {"run_id"}
    for cid in ids:
        kind, _, key = cid.partition(".")
        stat, _, mkey = key.partition(".")
        if cid in ATTRIBUTES:
            name, get = ATTRIBUTES[cid]
        elif kind == "summary" and stat in SUMMARY_STATS and mkey:
            name, get = f"metrics.{mkey}.{stat}", sums.getter(stat, mkey)
        elif kind in ("metrics", "params", "tags") and key:
            name = cid
            get = _getter(kind, key)
        else:
            raise InvalidParameterValue(f"Unknown column '{cid}': expected attr.<name>, metrics.<key>, "
                                        "params.<key>, tags.<key> or summary.<stat>.<key>")
        if name not in seen:
            seen.add(name)
            out.append(Column(name, get, ("int" if stat.endswith("_step") else "number") if kind == "summary" else None))
    return out


def _getter(kind: str, key: str) -> Any:
    if kind == "metrics":
        return lambda r: r.metrics[key].value if key in r.metrics else None
    if kind == "params":
        return lambda r: r.params.get(key)
    return lambda r: r.tags.get(key)


# -- writers --------------------------------------------------------------------------------

def _iso(ms: Any) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(kind: str, v: Any) -> Any:
    if v is None:
        return ""
    if kind == "time":
        return _iso(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


class CsvWriter:
    """CSV text: the header row, then rows as they come (times as ISO 8601 UTC)."""

    def __init__(self, columns: list[Column]) -> None:
        self.kinds = [c.kind for c in columns]
        self.buf = io.StringIO()
        self.out = csv.writer(self.buf, lineterminator="\n")
        self.out.writerow([c.name for c in columns])

    def rows(self, rows: list[list[Any]]) -> bytes:
        for row in rows:
            self.out.writerow([_cell(k, v) for k, v in zip(self.kinds, row)])
        text = self.buf.getvalue()
        self.buf.seek(0)
        self.buf.truncate()
        return text.encode("utf-8")

    def close(self) -> bytes:
        return self.rows([])


class _Sink:
    """A file object for pyarrow that keeps what is written until it is taken."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data: Any) -> int:
        b = bytes(data)
        self.parts.append(b)
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


class ParquetWriter:
    """One row group per page, sent on as soon as it is made."""

    def __init__(self, columns: list[Column]) -> None:
        pa = require_extra("pyarrow", "parquet", "exporting runs as Parquet")
        pq = require_extra("pyarrow.parquet", "parquet", "exporting runs as Parquet", package="pyarrow")
        self.pa = pa
        types = {"time": pa.timestamp("ms", tz="UTC"), "number": pa.float64(), "string": pa.string(),
                 "int": pa.int64()}
        self.columns = columns
        self.schema = pa.schema([(c.name, types[c.kind]) for c in columns])
        self.sink = _Sink()
        self.writer = pq.ParquetWriter(self.sink, self.schema)

    def rows(self, rows: list[list[Any]]) -> bytes:
        if rows:
            data = {c.name: [r[i] for r in rows] for i, c in enumerate(self.columns)}
            for c in self.columns:
                if c.kind == "string":
                    data[c.name] = [None if v is None else str(v) for v in data[c.name]]
            self.writer.write_table(self.pa.Table.from_pydict(data, schema=self.schema))
        return self.sink.take()

    def close(self) -> bytes:
        self.writer.close()
        return self.sink.take()


def writer_for(fmt: str, columns: list[Column]) -> CsvWriter | ParquetWriter:
    return ParquetWriter(columns) if fmt == "parquet" else CsvWriter(columns)


# -- what is read -------------------------------------------------------------------------

class RunsQuery:
    """The runs of an export: experiments, filter, order, view, and the columns asked for."""

    def __init__(self, ctx: ServerContext, a: Args) -> None:
        self.store = ctx.store
        self.experiment_ids = _list(a, "experiment_ids")
        if not self.experiment_ids:
            raise InvalidParameterValue("Missing value for required parameter 'experiment_ids'")
        self.filter = a.str("filter") or ""
        self.order_by = _list(a, "order_by")
        self.view = a.view_type("run_view_type")
        self.column_ids = _list(a, "columns")
        self.names: list[str] | None = None
        self.summaries = Summaries()

    def pages(self) -> Iterator[list[Any]]:
        token: str | None = None
        while True:
            runs, token = self.store.search_runs(self.experiment_ids, self.filter, self.view, PAGE, self.order_by, token)
            yield runs
            if not token:
                return

    def columns(self) -> list[Column]:
        """The chosen columns, or every one: a first pass collects the names (a header comes first)."""
        if self.column_ids:
            return chosen_columns(self.column_ids, self.summaries)
        from labtrack.client.run_table import column_order, run_record

        names: set[str] = set()
        for runs in self.pages():
            for r in runs:
                names.update(run_record(r))
        self.names = column_order(names)
        return [Column(n, None) for n in self.names]

    def rows(self, columns: list[Column], runs: list[Any]) -> list[list[Any]]:
        if self.names is None:
            self.summaries.read(self.store, runs)
            gets = [c.get for c in columns]
            return [[g(r) for g in gets] for r in runs]
        from labtrack.client.run_table import run_record

        names = self.names
        return [[rec.get(n) for n in names] for rec in map(run_record, runs)]


def history_runs(ctx: ServerContext, a: Args) -> tuple[list[Any], list[str] | None]:
    ids = list(dict.fromkeys(_list(a, "run_ids")))
    if not ids:
        raise InvalidParameterValue("Missing value for required parameter 'run_ids'")
    if len(ids) > MAX_HISTORY_RUNS:
        raise InvalidParameterValue(f"At most {MAX_HISTORY_RUNS} run IDs may be given.")
    keys = _list(a, "keys") or None
    return [ctx.store.get_run(r) for r in ids], keys


HISTORY_COLUMNS = [Column("run_id", None), Column("run_name", None), Column("key", None),
                   Column("step", None, "int"), Column("timestamp", None), Column("value", None, "number")]


def history_pages(ctx: ServerContext, runs: list[Any], keys: list[str] | None) -> Iterator[list[list[Any]]]:
    """Pages of (run_id, run_name, key, step, timestamp, value): by run, key, then step."""
    for run in runs:
        name = run.info.run_name or run.tags.get("mlflow.runName") or ""
        for key in keys or sorted(run.metrics):
            if key not in run.metrics:
                continue  # a run without the metric adds no rows for it (as lt.get_metric_histories)
            token: str | None = None
            while True:
                rows, token = ctx.store.get_metric_history_rows(run.info.run_id, key, POINTS_PAGE, token)
                yield [[run.info.run_id, name, key, step, ts, math.nan if nan else value]
                       for step, ts, value, nan, *_ in rows]
                if not token:
                    break


# -- the handlers -------------------------------------------------------------------------

def _check_read(ctx: ServerContext, args: Args, experiment_ids: Sequence[str] = (), run_ids: Sequence[str] = ()) -> None:
    """On a basic-auth server: READ on each experiment (or each run's experiment)."""
    auth = ctx.extra.get("auth")
    if auth is None:
        return
    user = args.user
    if user is None:
        from labtrack.errors import Unauthenticated

        raise Unauthenticated("You are not authenticated.")
    if user.is_admin:
        return
    if experiment_ids:
        auth.authorize(user, "runs/search", Args({"experiment_ids": list(experiment_ids)}))
    for rid in run_ids:
        auth.authorize(user, "metrics/get-history", Args({"run_id": rid}))


class _ExportHandler(BaseHandler):
    filename = "runs"

    async def get(self) -> None:
        await self.export(request_args(self.request))

    async def post(self) -> None:
        await self.export(request_args(self.request))

    async def export(self, a: Args) -> None:
        raise NotImplementedError

    async def stream(self, fmt: str, pages: Iterator[Any], write: Any, close: Any) -> None:
        """Each page as it is read and written; the first before any header, so that a bad
        filter is still answered as MLflow's JSON error."""
        done = object()

        def step() -> Any:
            page = next(pages, done)
            return done if page is done else write(page)
        chunk = await self.run(step)
        self.set_header("Content-Type", FORMATS[fmt])
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.set_header("Content-Disposition", f'attachment; filename="{self.filename}-{stamp}.{fmt}"')
        self.set_header("Cache-Control", "no-store")
        while chunk is not done:
            if chunk:
                self.write(chunk)
                await self.flush()
            chunk = await self.run(step)
        self.finish(await self.run(close))


class RunsExportHandler(_ExportHandler):
    filename = "runs"

    async def export(self, a: Args) -> None:
        fmt = _format(a)
        query = RunsQuery(self.ctx, a)
        _check_read(self.ctx, a, experiment_ids=query.experiment_ids)
        columns = await self.run(query.columns)
        out = await self.run(writer_for, fmt, columns)
        await self.stream(fmt, query.pages(), lambda runs: out.rows(query.rows(columns, runs)), out.close)


class HistoriesExportHandler(_ExportHandler):
    filename = "metric-histories"

    async def export(self, a: Args) -> None:
        fmt = _format(a)
        _check_read(self.ctx, a, run_ids=_list(a, "run_ids"))
        runs, keys = await self.run(history_runs, self.ctx, a)
        out = await self.run(writer_for, fmt, HISTORY_COLUMNS)
        await self.stream(fmt, history_pages(self.ctx, runs, keys), out.rows, out.close)


def handlers(ctx: ServerContext, prefixes: tuple[str, ...]) -> list[Any]:
    """The export routes under each of labtrack's API prefixes."""
    out: list[Any] = []
    for prefix in prefixes:
        out.append((prefix + "runs/export", RunsExportHandler, {"ctx": ctx}))
        out.append((prefix + "runs/export-histories", HistoriesExportHandler, {"ctx": ctx}))
    return out

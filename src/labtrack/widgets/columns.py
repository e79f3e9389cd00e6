"""The run table's columns: what each shows, and how the server sorts by it.

A column is named the way MLflow's filter grammar names things
(``params.lr``, ``metrics.loss``, ``tags.team``) or is one of the fixed run
columns (``status``, ``name``, ``start``, ``duration``).  Sorting uses the
server's ``order_by`` wherever MLflow's grammar can express it; only
``duration`` has no server-side order and is sorted here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labtrack.entities import Run

BASE_COLUMNS = ("status", "name", "start", "duration")
AUTO_PARAMS = 6  # auto-chosen columns per kind: enough to compare, few enough to read
AUTO_METRICS = 6


@dataclass(frozen=True)
class Column:
    """One table column: its name, heading, displayed text and sort rules."""

    key: str  # "status", "name", "start", "duration", "params.lr", "metrics.loss", "tags.x"
    label: str
    text: Callable[[Run], str]
    sort_value: Callable[[Run], Any]  # for sorting here (None sorts last)
    order_by: str | None  # the server's order_by field, None if it cannot sort by it


def _quoted(name: str) -> str:
    # MLflow's grammar needs backticks around keys with dots, spaces or dashes.
    return name if name.isidentifier() else "`" + name.replace("`", "") + "`"


def format_time(ms: int | None) -> str:
    """A start time as local ``YYYY-MM-DD HH:MM:SS``."""
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def format_duration(run: Run, now_ms: int | None = None) -> str:
    """``1h 2m``, ``3m 4s`` or ``5.6s``; a running run counts up to now."""
    ms = duration_ms(run, now_ms)
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m {int(seconds % 60)}s"
    else:
        text = f"{int(seconds // 3600)}h {int(seconds % 3600 // 60)}m"
    return text + ("…" if run.info.status == "RUNNING" else "")


def duration_ms(run: Run, now_ms: int | None = None) -> int | None:
    start, end = run.info.start_time, run.info.end_time
    if not start:
        return None
    if end is None:
        if run.info.status != "RUNNING":
            return None
        end = now_ms if now_ms is not None else int(time.time() * 1000)
    return max(0, end - start)


def format_value(value: Any) -> str:
    """A metric as 4 significant digits; other values as they were logged."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return "" if value is None else str(value)


def run_name(run: Run) -> str:
    return run.info.run_name or run.info.run_id[:8]


def _metric(key: str) -> Callable[[Run], Any]:
    def value(run: Run) -> Any:
        metric = run.metrics.get(key)
        if metric is None or math.isnan(metric.value):
            return None
        return metric.value
    return value


def _param_sort(key: str) -> Callable[[Run], Any]:
    def value(run: Run) -> Any:
        raw = run.params.get(key)
        if raw is None:
            return None
        try:
            return (0, float(raw), raw)  # numbers in numeric order, before text
        except ValueError:
            return (1, 0.0, raw)
    return value


def column(key: str) -> Column:
    """The column for a name such as ``"params.lr"``, ``"metrics.loss"`` or ``"status"``."""
    if key == "status":
        return Column(key, "status", lambda r: r.info.status, lambda r: r.info.status,
                      "attributes.status")
    if key == "name":
        return Column(key, "name", run_name, lambda r: run_name(r).lower(), "attributes.run_name")
    if key == "start":
        return Column(key, "start", lambda r: format_time(r.info.start_time),
                      lambda r: r.info.start_time, "attributes.start_time")
    if key == "duration":
        return Column(key, "duration", format_duration, duration_ms, None)
    kind, _, name = key.partition(".")
    if not name:
        raise ValueError(f"unknown column {key!r}: use status, name, start, duration, "
                         "params.<key>, metrics.<key> or tags.<key>")
    if kind in ("metric", "metrics"):
        return Column(f"metrics.{name}", name, lambda r: format_value(_metric(name)(r)),
                      _metric(name), f"metrics.{_quoted(name)}")
    if kind in ("param", "params"):
        return Column(f"params.{name}", name, lambda r: r.params.get(name, ""),
                      _param_sort(name), f"params.{_quoted(name)}")
    if kind in ("tag", "tags"):
        return Column(f"tags.{name}", name, lambda r: r.tags.get(name, ""),
                      lambda r: r.tags.get(name), f"tags.{_quoted(name)}")
    raise ValueError(f"unknown column {key!r}: use params.<key>, metrics.<key> or tags.<key>")


def auto_columns(runs: Sequence[Run]) -> list[str]:
    """Params and metrics worth showing when the caller names none: the most common keys."""
    params: dict[str, int] = {}
    metrics: dict[str, int] = {}
    for run in runs:
        for k in run.params:
            params[k] = params.get(k, 0) + 1
        for k in run.metrics:
            metrics[k] = metrics.get(k, 0) + 1

    def top(counts: dict[str, int], n: int) -> list[str]:
        return sorted(sorted(counts, key=lambda k: (-counts[k], k))[:n])

    return ([f"params.{k}" for k in top(params, AUTO_PARAMS)]
            + [f"metrics.{k}" for k in top(metrics, AUTO_METRICS)])


def parse_order(entry: str) -> tuple[str, bool]:
    """``"metrics.loss ASC"`` -> (column key, ascending); MLflow's default direction is ASC."""
    words = entry.strip().split()
    ascending = True
    if len(words) > 1 and words[-1].upper() in ("ASC", "DESC"):
        ascending = words[-1].upper() == "ASC"
        words = words[:-1]
    field = " ".join(words).replace("`", "")
    aliases = {"attributes.start_time": "start", "start_time": "start",
               "attributes.run_name": "name", "run_name": "name",
               "attributes.status": "status", "status": "status"}
    return aliases.get(field, field), ascending


def sort_locally(runs: list[Run], col: Column, ascending: bool) -> list[Run]:
    """Runs in ``col``'s order; missing values last in both directions, as the server does."""
    present = [r for r in runs if col.sort_value(r) is not None]
    missing = [r for r in runs if col.sort_value(r) is None]
    return sorted(present, key=col.sort_value, reverse=not ascending) + missing

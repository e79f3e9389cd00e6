"""Input rules and limits (MLflow's ``validation.py``, reference §5).

One table of limits; every check raises InvalidParameterValue with a message
that names the offending field, so a client sees exactly what to fix.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Any

from labtrack.columns import Float64Column, Int64Column
from labtrack.entities import MetricSeries, decode_double
from labtrack.errors import InvalidParameterValue
# The one table of limits, each with its MLflow source: labtrack/limits.py (the store's
# modules take LIMITS from here).
from labtrack.limits import LIMITS, TRUNCATED


_KEY_RE = re.compile(r"^[/\w.\- :]*$")
_RUN_ID_RE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")


def check_key(kind: str, key: Any, limit: int | None = None) -> str:
    """A metric/param/tag key: ``[/\\w.\\- :]``, path-safe, at most 250 chars."""
    if not isinstance(key, str) or key == "":
        raise InvalidParameterValue(f"Invalid {kind} name: {key!r}. Names must be non-empty strings.")
    limit = limit or LIMITS["key"]
    if len(key) > limit:
        raise InvalidParameterValue(
            f"{kind.capitalize()} name '{key[:50]}...' had length {len(key)}, which exceeded length limit of {limit}")
    if not _KEY_RE.match(key):
        raise InvalidParameterValue(
            f"Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores (_), "
            "dashes (-), periods (.), spaces ( ), colons (:) and slashes (/).")
    if posixpath.normpath(key) != key or key == "." or key.startswith(("..", "/")):
        raise InvalidParameterValue(
            f"Invalid {kind} name: '{key}'. Names may be treated as files in certain cases, and must not "
            "resolve to other names when treated as such.")
    return key


def fit_value(kind: str, key: str, value: str, limit_name: str) -> str:
    """``value`` within the limit ``limit_name``: cut to it where MLflow cuts, else checked."""
    limit = LIMITS[limit_name]
    if limit_name in TRUNCATED and len(value) > limit:
        return value[:limit]
    return check_value_length(kind, key, value, limit)


def check_value_length(kind: str, key: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidParameterValue(
            f"{kind.capitalize()} value for '{key}' had length {len(value)}, which exceeded length limit of {limit}")
    return value


def check_string(field: str, value: Any, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{field}': expected a string")
    if not allow_empty and value == "":
        raise InvalidParameterValue(f"Missing value for required parameter '{field}'")
    return value


def check_int(field: str, value: Any, *, minimum: int | None = None) -> int:
    """An int64 that may arrive as a JSON number or a numeric string."""
    if isinstance(value, bool):
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{field}': expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{field}': expected an integer")
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidParameterValue(
                f"Invalid value {value!r} for parameter '{field}': expected an integer") from None
    if not isinstance(value, int):
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{field}': expected an integer")
    if not -(2**63) <= value < 2**63:
        raise InvalidParameterValue(f"Value {value} for parameter '{field}' is out of the int64 range")
    if minimum is not None and value < minimum:
        raise InvalidParameterValue(f"Invalid value {value} for parameter '{field}': must be >= {minimum}")
    return value


def check_double(field: str, value: Any) -> float:
    """A double that may arrive as a number or "NaN"/"Infinity"/"-Infinity"."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{field}': expected a number")
    try:
        out = decode_double(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(
            f"Invalid value {value!r} for parameter '{field}': expected a number") from None
    return out


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not run_id:
        raise InvalidParameterValue("Missing value for required parameter 'run_id'")
    if not _RUN_ID_RE.match(run_id):
        raise InvalidParameterValue(f"Invalid run ID: '{run_id[:80]}'")
    return run_id


def check_experiment_id(experiment_id: Any) -> int:
    if isinstance(experiment_id, bool):
        raise InvalidParameterValue(f"Invalid experiment ID: {experiment_id!r}")
    try:
        value = int(str(experiment_id).strip())
    except ValueError:
        raise InvalidParameterValue(f"Invalid experiment ID: '{str(experiment_id)[:80]}'") from None
    if value < 0 or value >= 2**31:
        raise InvalidParameterValue(f"Invalid experiment ID: '{experiment_id}'")
    return value


def check_max_results(value: Any, default: int, limit: int) -> int:
    if value is None or value == "":
        return default
    n = check_int("max_results", value)
    if n < 1:
        raise InvalidParameterValue(f"Invalid value {n} for parameter 'max_results': must be at least 1")
    if n > limit:
        raise InvalidParameterValue(
            f"Invalid value {n} for parameter 'max_results' supplied. It must be at most {limit}")
    return n


def check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or name.strip() == "":
        raise InvalidParameterValue("Invalid experiment name: must be a non-empty string")
    if len(name) > LIMITS["experiment_name"]:
        raise InvalidParameterValue(
            f"Experiment name had length {len(name)}, which exceeded length limit of {LIMITS['experiment_name']}")
    return name


_INT64 = (-(2**63), 2**63 - 1)


def check_series(series: Sequence[MetricSeries]) -> list[MetricSeries]:
    """Checked series (``runs/log-series``) with values as floats; a bad point refuses them all.

    Whole columns are checked at once in C (``map(type, ...)``, ``min``/``max``):
    per-point Python work would cost as much as storing the points.
    """
    total = sum(len(s.values) if isinstance(s.values, list) else 0 for s in series)
    if total > LIMITS["series_points"]:
        raise InvalidParameterValue(
            f"A log-series request can contain at most {LIMITS['series_points']} points. Got {total} points.")
    return [_check_one_series(s) for s in series]


def _check_one_series(s: MetricSeries) -> MetricSeries:
    key = check_key("metric", s.key)
    columns = {"steps": s.steps, "timestamps": s.timestamps, "values": s.values}
    for name, column in columns.items():
        if not isinstance(column, list):
            raise InvalidParameterValue(f"Metric '{key}': '{name}' must be a list, got {type(column).__name__}")
    if not len(s.steps) == len(s.timestamps) == len(s.values):
        raise InvalidParameterValue(
            f"Metric '{key}': steps, timestamps and values must have the same length "
            f"(got {len(s.steps)}, {len(s.timestamps)} and {len(s.values)})")
    for name in ("steps", "timestamps"):
        column = columns[name]
        if not column:
            continue
        if type(column) is Int64Column:  # unpacked from int64: only a timestamp's sign is left to check
            if name == "steps":
                continue
            low, high = min(column), 0
        else:
            if not set(map(type, column)) <= {int}:
                bad = next(i for i, v in enumerate(column) if type(v) is not int)
                raise InvalidParameterValue(
                    f"Metric '{key}': {name}[{bad}] is {column[bad]!r}; {name} must be integers")
            low, high = min(column), max(column)
        minimum = 0 if name == "timestamps" else _INT64[0]
        if low < minimum or high > _INT64[1]:
            bad_value = low if low < minimum else high
            raise InvalidParameterValue(
                f"Metric '{key}': {name}[{column.index(bad_value)}] = {bad_value} is out of range "
                f"({'a timestamp must not be negative' if low < minimum else 'int64'})")
    values = s.values
    if type(values) is not Float64Column and not set(map(type, values)) <= {float}:
        values = [v if type(v) is float else _series_value(key, i, v) for i, v in enumerate(values)]
    return MetricSeries(key, s.steps, s.timestamps, values)


def _series_value(key: str, index: int, value: Any) -> float:
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    elif type(value) is str and value in ("NaN", "Infinity", "-Infinity"):
        return decode_double(value)
    raise InvalidParameterValue(
        f"Metric '{key}': values[{index}] is {value!r}; values must be numbers, \"NaN\", \"Infinity\" "
        "or \"-Infinity\"")

"""Request bodies of ``/invocations`` in MLflow's scoring formats, and the reply body.

JSON objects carry the input under exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (and optionally
``params``); ``text/csv`` bodies are a table with a header row.  Anything
else is a :class:`BadRequest` with a message that says what to send.
"""

from __future__ import annotations

import io
import json
from typing import Any

from labtrack.errors import BadRequest

JSON = "application/json"
CSV = "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_EXPECTED = ("a JSON object with exactly one of the keys " + ", ".join(FORMATS)
             + " (and optionally params)")


def parse_request(body: bytes, content_type: str | None) -> tuple[Any, dict[str, Any] | None]:
    """(model input, params) from a request body; BadRequest says what is wrong."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == CSV:
        return _csv(body), None
    if kind == JSON or kind.endswith("+json"):
        return _json(body)
    shown = kind or "none"
    raise BadRequest(f"unsupported content type {shown!r}: send {JSON} ({_EXPECTED}) or {CSV}")


def _csv(body: bytes) -> Any:
    import pandas as pd

    if not body.strip():
        raise BadRequest("the CSV body is empty: send a header row and at least one data row")
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise BadRequest(f"malformed CSV: {exc}") from None
    if frame.empty:
        raise BadRequest("the CSV body has a header but no data rows")
    return frame


def _json(body: bytes) -> tuple[Any, dict[str, Any] | None]:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"expected {_EXPECTED}, got a JSON {type(obj).__name__}")
    params = obj.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadRequest("params must be a JSON object")
    keys = [k for k in obj if k != "params"]
    unknown = [k for k in keys if k not in FORMATS]
    if unknown:
        raise BadRequest(f"unknown input key {unknown[0]!r}: expected {_EXPECTED}")
    if len(keys) != 1:
        raise BadRequest(f"expected {_EXPECTED}, got {len(keys)} of them")
    key = keys[0]
    value = obj[key]
    if key == "dataframe_split":
        return _split(value), params
    if key == "dataframe_records":
        return _records(value), params
    return _tensor_input(key, value), params


def _split(value: Any) -> Any:
    import pandas as pd

    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise BadRequest('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    unknown = [k for k in value if k not in ("columns", "data", "index")]
    if unknown:
        raise BadRequest(f"dataframe_split has unknown key {unknown[0]!r} "
                         "(expected columns, data and optionally index)")
    columns = value.get("columns")
    if columns is not None:
        if not isinstance(columns, list):
            raise BadRequest("dataframe_split.columns must be a list of column names")
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(columns):
                got = f"{len(row)} values" if isinstance(row, list) else f"a JSON {type(row).__name__}"
                raise BadRequest(f"dataframe_split row {i} has {got}, expected {len(columns)} "
                                 f"(one per column of {columns})")
    try:
        return pd.DataFrame(data=value["data"], columns=columns,
                            index=value.get("index"))
    except (ValueError, TypeError, AssertionError) as exc:
        raise BadRequest(f"dataframe_split does not make a table: {exc}") from None


def _records(value: Any) -> Any:
    import pandas as pd

    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise BadRequest('dataframe_records must be a list of objects: [{"col": value, ...}, ...]')
    if not value:
        raise BadRequest("dataframe_records is empty")
    return pd.DataFrame.from_records(value)


def _tensor_input(key: str, value: Any) -> Any:
    """``instances``/``inputs``: a list of rows or values, or an object of named inputs.

    Lists stay lists here: the model's signature decides whether they become
    a table (column inputs) or an array (tensor inputs).
    """
    if isinstance(value, dict):
        if not value:
            raise BadRequest(f"{key} is an empty object")
        return value
    if isinstance(value, list):
        if not value:
            raise BadRequest(f"{key} is an empty list")
        return value
    raise BadRequest(f"{key} must be a list (rows or values) or an object of named inputs, "
                     f"got a JSON {type(value).__name__}")


def as_model_input(data: Any) -> Any:
    """A plain list/dict input turned into what models take when there is no signature."""
    import numpy as np
    import pandas as pd

    if isinstance(data, list):
        if all(isinstance(r, dict) for r in data):
            return pd.DataFrame.from_records(data)
        try:
            return np.asarray(data)
        except ValueError as exc:
            raise BadRequest(f"not a rectangular array: {exc}") from None
    if isinstance(data, dict):
        if all(np.ndim(v) == 0 for v in data.values()):
            return pd.DataFrame([data])
        try:
            return pd.DataFrame(data)
        except ValueError as exc:
            raise BadRequest(f"named inputs of different lengths: {exc}") from None
    return data


def predictions_body(predictions: Any) -> bytes:
    """``{"predictions": ...}`` (a table becomes a list of records)."""
    from labtrack.models.example import jsonable

    return json.dumps({"predictions": jsonable(predictions)}, allow_nan=False).encode()

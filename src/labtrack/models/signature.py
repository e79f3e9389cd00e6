"""Model signatures in MLflow's JSON format: inference from examples, enforcement at predict.

A signature is ``{"inputs": "<json>", "outputs": "<json>", "params": None}``
where each JSON string is a list of column specs
(``{"type": "double", "name": "a", "required": true}``) or tensor specs
(``{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}``).
Enforcement turns a request into what the model was fitted on, or says
clearly what is wrong (a BadRequest, which serving answers with a 400).
"""

from __future__ import annotations

import json
from typing import Any

from labtrack.errors import BadRequest, LabtrackError

NUMERIC = ("double", "float", "long", "integer")


def _column_type(values: Any) -> str:
    """MLflow's column type for a pandas Series."""
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _column_type(pd.Series(values.astype(object)))
    if isinstance(dtype, pd.StringDtype):
        return "string"
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "boolean"
    if kind == "i":
        return "integer" if dtype.itemsize <= 4 else "long"
    if kind == "u":
        return "integer" if dtype.itemsize <= 2 else "long"
    if kind == "f":
        return "float" if dtype.itemsize <= 4 else "double"
    if kind == "M":
        return "datetime"
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return "string"
    if present and all(isinstance(v, (bytes, bytearray)) for v in present):
        return "binary"
    raise TypeError(f"cannot infer a column type for values of dtype {dtype}")


def _scalar_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    raise TypeError(f"cannot infer a type for {type(value).__name__} values")


def _tensor_dtype(dtype: Any) -> str:
    kind = dtype.kind
    if kind == "U":
        return "str"
    if kind == "S":
        return "bytes"
    if kind == "O":
        return "object"
    return str(dtype)


def _tensor_spec(array: Any, name: str | None = None) -> dict[str, Any]:
    shape = [-1, *array.shape[1:]] if array.ndim else []
    spec: dict[str, Any] = {"type": "tensor",
                            "tensor-spec": {"dtype": _tensor_dtype(array.dtype), "shape": shape}}
    return {"name": name, **spec} if name is not None else spec


def infer_schema(data: Any) -> list[dict[str, Any]]:
    """The column or tensor specs that describe ``data`` (a DataFrame, Series, array...)."""
    import numpy as np
    import pandas as pd

    data = _from_torch(data)
    if isinstance(data, pd.DataFrame):
        return [{"type": _column_type(data[c]), "name": str(c), "required": True}
                for c in data.columns]
    if isinstance(data, pd.Series):
        return [{"type": _column_type(data), "required": True}]
    if isinstance(data, np.ndarray):
        return [_tensor_spec(data)]
    if isinstance(data, dict) and data and all(isinstance(v, np.ndarray) for v in data.values()):
        return [_tensor_spec(v, str(k)) for k, v in data.items()]
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        return infer_schema(pd.DataFrame(data))
    if isinstance(data, list) and data:
        types = {_scalar_type(v) for v in data}
        if len(types) == 1:
            return [{"type": types.pop(), "required": True}]
    if isinstance(data, (bool, int, float, str, bytes)):
        return [{"type": _scalar_type(data), "required": True}]
    raise TypeError(f"cannot infer a schema for {type(data).__name__}")


def infer_signature(inputs: Any, outputs: Any = None) -> dict[str, Any]:
    """A signature from example inputs and the model's prediction on them.

    As MLflow does, a 1-D array predicted from column inputs is described as
    one unnamed column (one prediction per row), not as a tensor.
    """
    import numpy as np
    import pandas as pd

    in_specs = infer_schema(inputs)
    out = _from_torch(outputs)
    if (isinstance(out, np.ndarray) and out.ndim == 1
            and not all(s.get("type") == "tensor" for s in in_specs)):
        out = pd.Series(out)
    return {"inputs": json.dumps(in_specs),
            "outputs": json.dumps(infer_schema(out)) if out is not None else None,
            "params": None}


def _from_torch(data: Any) -> Any:
    if type(data).__module__.startswith("torch") and hasattr(data, "detach"):
        return data.detach().cpu().numpy()
    return data


def input_specs(signature: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The parsed input specs of a signature (None when the model has none)."""
    if not signature or not signature.get("inputs"):
        return None
    raw = signature["inputs"]
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise LabtrackError(f"the model's signature is not valid JSON: {exc}") from exc
    return specs or None


# -- enforcement -------------------------------------------------------------------------
def enforce(data: Any, specs: list[dict[str, Any]] | None) -> Any:
    """``data`` shaped and typed as the signature's inputs say; BadRequest when it cannot be."""
    if not specs:
        return data
    if all(s.get("type") == "tensor" for s in specs):
        return _enforce_tensors(data, specs)
    return _enforce_columns(data, specs)


def _frame(data: Any, specs: list[dict[str, Any]]) -> Any:
    import numpy as np
    import pandas as pd

    names = [s.get("name") for s in specs]
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, dict):
        try:
            if all(np.ndim(v) == 0 for v in data.values()):
                return pd.DataFrame([data])
            return pd.DataFrame(data)
        except ValueError as exc:
            raise BadRequest(f"cannot make a table of the input: {exc}") from None
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(data)
    array = np.asarray(data, dtype=object) if isinstance(data, list) else data
    if isinstance(array, np.ndarray):
        if array.ndim == 1 and len(specs) == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise BadRequest(f"expected rows of {len(specs)} values, got an array of shape "
                             f"{array.shape}")
        if array.shape[1] != len(specs):
            raise BadRequest(f"expected {len(specs)} columns {names}, got {array.shape[1]}")
        frame = pd.DataFrame(array, columns=[n if n is not None else i
                                             for i, n in enumerate(names)])
        return frame.infer_objects()
    raise BadRequest(f"cannot use {type(data).__name__} as model input")


def _enforce_columns(data: Any, specs: list[dict[str, Any]]) -> Any:
    frame = _frame(data, specs)
    names = [s.get("name") for s in specs]
    if all(n is not None for n in names):
        present = {str(c): c for c in frame.columns}
        missing = [n for n, s in zip(names, specs) if s.get("required", True) and n not in present]
        if missing:
            raise BadRequest(f"the model is missing input columns {missing}: it expects "
                             f"{names}, got {[str(c) for c in frame.columns]}")
        frame = frame[[present[n] for n in names if n in present]]
        frame.columns = [n for n in names if n in present]
    elif frame.shape[1] != len(specs):
        raise BadRequest(f"expected {len(specs)} columns, got {frame.shape[1]}")
    for spec, column in zip(specs, list(frame.columns)):
        frame[column] = _cast(frame[column], spec.get("type", "any"), column)
    return frame


def _cast(values: Any, kind: str, column: Any) -> Any:
    import numpy as np
    import pandas as pd

    dtype_kind = values.dtype.kind
    sample = next((v for v in values if v is not None), None)

    def wrong(expected: str) -> BadRequest:
        return BadRequest(f"column {column!r} must hold {expected} ({kind}), got "
                          f"{type(sample).__name__} values such as {sample!r}")

    if kind in ("double", "float"):
        if dtype_kind == "O" and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     for v in values if v is not None):
            values, dtype_kind = pd.to_numeric(values), "f"
        if dtype_kind not in "iuf":
            raise wrong("numbers")
        return values.astype(np.float64 if kind == "double" else np.float32)
    if kind in ("long", "integer"):
        if dtype_kind == "O" and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            dtype_kind = "i"
        if dtype_kind == "f" and values.notna().all() and (values % 1 == 0).all():
            dtype_kind = "i"
        if dtype_kind not in "iu":
            raise wrong("integers")
        return values.astype(np.int64 if kind == "long" else np.int32)
    if kind == "boolean":
        if dtype_kind == "b" or (dtype_kind == "O" and all(isinstance(v, bool) for v in values)):
            return values.astype(bool)
        raise wrong("booleans")
    if kind == "string":
        if dtype_kind in "OU" and all(isinstance(v, str) for v in values if v is not None):
            return values
        if isinstance(values.dtype, pd.StringDtype):
            return values
        raise wrong("strings")
    if kind == "datetime":
        try:
            return pd.to_datetime(values)
        except (ValueError, TypeError):
            raise wrong("dates") from None
    return values


def _enforce_tensors(data: Any, specs: list[dict[str, Any]]) -> Any:
    import numpy as np
    import pandas as pd

    if len(specs) == 1 and specs[0].get("name") is None:
        if isinstance(data, pd.DataFrame):
            data = data.to_numpy()
        elif isinstance(data, dict):
            raise BadRequest("the model takes one unnamed tensor, not named inputs")
        return _tensor(data, specs[0], "input")
    if isinstance(data, pd.DataFrame):
        data = {str(c): data[c].to_numpy() for c in data.columns}
    if not isinstance(data, dict):
        raise BadRequest(f"the model takes named tensors {[s.get('name') for s in specs]}")
    missing = [s["name"] for s in specs if s.get("name") not in data]
    if missing:
        raise BadRequest(f"the model is missing input tensors {missing}")
    return {s["name"]: _tensor(data[s["name"]], s, s["name"]) for s in specs}


def _tensor(value: Any, spec: dict[str, Any], what: str) -> Any:
    import numpy as np

    tensor = spec.get("tensor-spec") or {}
    dtype = tensor.get("dtype", "object")
    shape = list(tensor.get("shape") or [])
    try:
        raw = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise BadRequest(f"{what}: not a rectangular array ({exc})") from None
    target = {"str": np.str_, "bytes": np.bytes_, "object": object}.get(dtype, dtype)
    try:
        target_kind = np.dtype(target).kind
    except TypeError:
        raise LabtrackError(f"the model's signature names an unknown dtype {dtype!r}") from None
    if target_kind in "biuf" and raw.dtype.kind not in "biuf":
        raise BadRequest(f"{what} must hold numbers ({dtype}), got {raw.dtype} values")
    if target_kind in "iu" and raw.dtype.kind == "f" and not np.all(np.mod(raw, 1) == 0):
        raise BadRequest(f"{what} must hold integers ({dtype}), got fractions")
    array = raw.astype(target)
    if shape and (array.ndim != len(shape) or any(
            want != -1 and want != got for want, got in zip(shape, array.shape))):
        raise BadRequest(f"{what} must have shape {tuple(shape)} (-1: any size), "
                         f"got {array.shape}")
    return array

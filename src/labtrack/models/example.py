"""Input examples: saved beside a model as ``input_example.json`` (and the request body that
serves it, ``serving_input_example.json``), in MLflow's layouts."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

EXAMPLE_FILE = "input_example.json"
SERVING_FILE = "serving_input_example.json"


def jsonable(value: Any) -> Any:
    """Plain JSON values for numpy/pandas objects; NaN and infinities become null."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime.datetime, datetime.date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if value is pd.NaT:
        return None
    return value


def normalize(example: Any) -> Any:
    """A DataFrame, an ndarray or a dict of ndarrays: the forms examples are stored in."""
    import numpy as np
    import pandas as pd

    if type(example).__module__.startswith("torch") and hasattr(example, "detach"):
        return example.detach().cpu().numpy()
    if isinstance(example, (pd.DataFrame, np.ndarray)):
        return example
    if isinstance(example, pd.Series):
        return example.to_frame()
    if isinstance(example, dict):
        if example and all(np.ndim(v) > 0 for v in example.values()):
            return {str(k): np.asarray(v) for k, v in example.items()}
        return pd.DataFrame([example])
    if isinstance(example, list) and example and all(isinstance(r, dict) for r in example):
        return pd.DataFrame(example)
    if isinstance(example, (list, tuple)):
        return np.asarray(example)
    raise TypeError(f"unsupported input example type {type(example).__name__}")


def save_example(folder: str | Path, example: Any) -> tuple[dict[str, Any], Any]:
    """Write the example files; return (``saved_input_example_info``, the normalized example)."""
    import pandas as pd

    data = normalize(example)
    folder = Path(folder)
    info: dict[str, Any] = {"artifact_path": EXAMPLE_FILE, "serving_input_path": SERVING_FILE}
    if isinstance(data, pd.DataFrame):
        split = {"columns": [str(c) for c in data.columns],
                 # Row by row keeps each column's own type (ints stay ints beside floats).
                 "data": jsonable([list(row) for row in data.itertuples(index=False)])}
        info.update(type="dataframe", pandas_orient="split")
        stored, serving = split, {"dataframe_split": split}
    else:
        info["type"] = "ndarray"
        stored = jsonable(data)
        serving = {"inputs": stored}
    (folder / EXAMPLE_FILE).write_text(json.dumps(stored), encoding="utf-8")
    (folder / SERVING_FILE).write_text(json.dumps(serving, indent=2), encoding="utf-8")
    return info, data


def load_example(folder: str | Path, info: dict[str, Any] | None) -> Any:
    """The example a model folder holds (None if it has none)."""
    import numpy as np
    import pandas as pd

    if not info:
        return None
    path = Path(folder) / info.get("artifact_path", EXAMPLE_FILE)
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    if info.get("type") == "dataframe":
        if info.get("pandas_orient", "split") == "records":
            return pd.DataFrame.from_records(stored)
        return pd.DataFrame(stored["data"], columns=stored["columns"])
    if isinstance(stored, dict):
        return {k: np.asarray(v) for k, v in stored.items()}
    return np.asarray(stored)

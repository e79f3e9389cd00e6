"""``lt.data``: datasets with MLflow's digest, schema, profile and source, and ``lt.log_input``.

A dataset logged here reads the same as one that ``mlflow.data.from_pandas``
/ ``from_numpy`` describes: the 8-character digest is computed the same way
(so the same frame gets the same digest from both clients), the schema is
MLflow's ``mlflow_colspec`` / ``mlflow_tensorspec`` JSON, the profile has
MLflow's keys, and a dataset without a source gets MLflow's ``code`` source
(the run's user and source tags).  The server stores it as a run input, which
``datasets.name`` / ``datasets.digest`` filters search.
"""

from __future__ import annotations

import json
from typing import Any

from labtrack.entities import DatasetInput

MAX_ROWS = 10000  # rows (or flattened elements) that enter a digest, as MLflow
CONTEXT_TAG = "mlflow.data.context"

__all__ = ["Dataset", "from_dict", "from_numpy", "from_pandas", "log_input"]


def _md5(elements: list[Any]) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    for element in elements:
        digest.update(element)
    return digest.hexdigest()[:8]


def pandas_digest(df: Any) -> str:
    """MLflow's digest of a DataFrame: hashed string and number columns of the first rows,
    the row count and the column names."""
    import numpy as np
    import pandas as pd

    head = df.head(MAX_ROWS)
    strings = head.columns[(df.map(type) == str).all(axis=0)]
    numbers = head.select_dtypes(include=[np.number]).columns
    kept = head[strings.union(numbers)]
    return _md5([pd.util.hash_pandas_object(kept).values, np.int64(len(df))]
                + [str(c).encode() for c in df.columns])


def numpy_digest(features: Any, targets: Any = None) -> str:
    """MLflow's digest of arrays (or dicts of arrays): hashed leading elements and shapes."""
    import numpy as np
    import pandas as pd

    elements: list[Any] = []

    def add(array: Any) -> None:
        flat = np.asarray(array).flatten()[:MAX_ROWS]
        try:
            elements.append(pd.util.hash_array(flat))
        except TypeError:  # object arrays of unhashable things: their size stands in
            elements.append(np.int64(flat.size))
        elements.extend(np.int64(n) for n in np.shape(array))

    for part in (features, targets):
        if part is None:
            continue
        if isinstance(part, dict):
            for key in sorted(part):
                add(part[key])
        else:
            add(part)
    return _md5(elements)


def _code_source() -> str:
    from labtrack.client import system_tags

    name, kind = system_tags.source()
    return json.dumps({"tags": {system_tags.USER: system_tags.user_name(),
                                system_tags.SOURCE_NAME: name, system_tags.SOURCE_TYPE: kind}})


def _source(source: Any) -> tuple[str, str]:
    """(source_type, source JSON) for a user's source: a path or URL string, a dict, or None."""
    if source is None:
        return "code", _code_source()
    if isinstance(source, dict):
        return str(source.get("source_type") or "code"), json.dumps(source)
    if hasattr(source, "to_json") and hasattr(source, "_get_source_type"):  # an mlflow DatasetSource
        return source._get_source_type(), source.to_json()
    text = str(source)
    if text.startswith(("http://", "https://")):
        return "http", json.dumps({"url": text})
    return "local", json.dumps({"uri": text})


class Dataset:
    """A described dataset: what ``log_input`` sends, plus the data for ``lt.evaluate``."""

    def __init__(self, *, name: str | None, digest: str, source_type: str, source: str,
                 schema: dict[str, Any] | None, profile: dict[str, Any] | None,
                 df: Any = None, features: Any = None, targets: Any = None,
                 predictions: Any = None) -> None:
        self.name = name or "dataset"
        self.digest = digest
        self.source_type = source_type
        self.source = source
        self.schema = schema
        self.profile = profile
        self.df = df
        self.features = features
        self.targets = targets
        self.predictions = predictions

    def to_dict(self) -> dict[str, str | None]:
        """MLflow's ``Dataset.to_dict()``: every field a string (JSON where structured)."""
        return {"name": self.name, "digest": self.digest, "source": self.source,
                "source_type": self.source_type,
                "schema": json.dumps(self.schema) if self.schema is not None else None,
                "profile": json.dumps(self.profile) if self.profile is not None else None}

    def input(self, context: str | None = None, tags: dict[str, str] | None = None) -> DatasetInput:
        """This dataset as a run input, with ``mlflow.data.context`` when a context is given."""
        d = self.to_dict()
        all_tags = dict(tags or {})
        if context:
            all_tags[CONTEXT_TAG] = context
        return DatasetInput(name=self.name, digest=self.digest, source_type=self.source_type,
                            source=self.source, schema=d["schema"], profile=d["profile"],
                            tags=all_tags)

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, digest={self.digest!r}, source_type={self.source_type!r})"


def from_pandas(df: Any, source: Any = None, targets: str | None = None, name: str | None = None,
                digest: str | None = None, predictions: str | None = None) -> Dataset:
    """Describe a pandas DataFrame (``targets``/``predictions`` name its columns)."""
    from labtrack.errors import InvalidParameterValue
    from labtrack.models.signature import infer_schema

    for column in (targets, predictions):
        if column is not None and column not in df.columns:
            raise InvalidParameterValue(f"column {column!r} is not in the DataFrame")
    try:
        schema: dict[str, Any] | None = {"mlflow_colspec": infer_schema(df)}
    except Exception:  # a column type without an MLflow equivalent: no schema, as MLflow
        schema = None
    source_type, source_json = _source(source)
    return Dataset(name=name, digest=digest or pandas_digest(df), source_type=source_type,
                   source=source_json, schema=schema,
                   profile={"num_rows": len(df), "num_elements": int(df.size)},
                   df=df, targets=targets, predictions=predictions)


def _numpy_profile(features: Any, targets: Any) -> dict[str, Any]:
    import numpy as np

    def attr(data: Any, name: str) -> Any:
        if isinstance(data, dict):
            return {k: _plain(getattr(np.asarray(v), name)) for k, v in data.items()}
        return _plain(getattr(np.asarray(data), name))

    profile = {f"features_{n}": attr(features, n) for n in ("shape", "size", "nbytes")}
    if targets is not None:
        profile.update({f"targets_{n}": attr(targets, n) for n in ("shape", "size", "nbytes")})
    return profile


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else int(value)


def from_numpy(features: Any, source: Any = None, targets: Any = None, name: str | None = None,
               digest: str | None = None) -> Dataset:
    """Describe numpy arrays (or dicts of arrays) of features and optional targets."""
    from labtrack.models.signature import infer_schema

    try:
        schema: dict[str, Any] | None = {"mlflow_tensorspec": {
            "features": json.dumps(infer_schema(features)),
            "targets": json.dumps(infer_schema(targets)) if targets is not None else None}}
    except Exception:
        schema = None
    source_type, source_json = _source(source)
    return Dataset(name=name, digest=digest or numpy_digest(features, targets),
                   source_type=source_type, source=source_json, schema=schema,
                   profile=_numpy_profile(features, targets), features=features, targets=targets)


def from_dict(data: dict[str, Any], source: Any = None, targets: str | None = None,
              name: str | None = None, digest: str | None = None) -> Dataset:
    """Describe a dict of equal-length columns (as a DataFrame of those columns)."""
    import pandas as pd

    return from_pandas(pd.DataFrame(data), source=source, targets=targets, name=name, digest=digest)


def log_input(dataset: Any, context: str | None = None, tags: dict[str, str] | None = None,
              model: Any = None, run_id: str | None = None) -> None:
    """Record ``dataset`` (an ``lt.data`` or ``mlflow.data`` dataset) as an input of the run."""
    from labtrack.client import fluent

    if isinstance(dataset, Dataset):
        entry = dataset.input(context, tags).to_json()
    else:  # an mlflow.data dataset: its own to_dict() has the same fields
        d = dataset.to_dict()
        entry = Dataset(name=d["name"], digest=d["digest"], source_type=d["source_type"],
                        source=d["source"], schema=json.loads(d["schema"]) if d.get("schema") else None,
                        profile=json.loads(d["profile"]) if d.get("profile") else None
                        ).input(context, tags).to_json()
    rid = run_id or fluent._run_id()
    message: dict[str, Any] = {"run_id": rid, "datasets": [entry]}
    if model is not None:
        message["models"] = [{"model_id": getattr(model, "model_id", model)}]
    client = fluent._client()
    if client._sender is not None:
        client._sender.wait()  # the run's earlier writes first, as the server sees them in order
    client._call("POST", "runs/log-inputs", message)

"""``lt.log_table`` / ``lt.load_table``: tables as artifacts, in MLflow's format.

A table is a ``.json`` artifact in pandas' ``orient="split"`` layout
(``{"columns": [...], "data": [[...], ...]}``) or a ``.parquet`` file; logging
to the same file again appends rows.  The run's ``mlflow.loggedArtifacts`` tag
lists it as ``{"path": ..., "type": "table"}``, which is how MLflow's UI (and
labtrack's, as a sortable table) knows it is a table.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue

LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"


def _frame(data: Any) -> Any:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if not isinstance(data, dict):
        raise InvalidParameterValue("data must be a pandas.DataFrame or a dictionary")
    try:
        return pd.DataFrame(data)
    except ValueError:  # all scalars: one row
        return pd.DataFrame([data])


def _read(path: Path) -> Any:
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    with open(path) as f:
        split = json.load(f)
    return pd.DataFrame(split.get("data") or [], columns=split.get("columns"))


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> None:
    """Log a DataFrame or dict of columns as a table artifact (``.json`` or ``.parquet``)."""
    import pandas as pd

    from labtrack.client import fluent

    if not artifact_file.endswith((".json", ".parquet")):
        raise InvalidParameterValue(
            f"Invalid artifact file path {artifact_file!r}: a table is a '.json' or '.parquet' file")
    frame = _frame(data)
    client = fluent._client()
    rid = run_id or fluent._run_id()
    norm = posixpath.normpath(artifact_file)
    folder = posixpath.dirname(norm) or None
    with tempfile.TemporaryDirectory(prefix="labtrack-table-") as tmp:
        existing = [f.path for f in client.list_artifacts(rid, folder)]
        if norm in existing:
            old = Path(client.download_artifacts(rid, norm, tmp))
            frame = pd.concat([_read(old), frame], ignore_index=True)
        target = Path(tmp) / "new" / posixpath.basename(norm)
        target.parent.mkdir()
        if norm.endswith(".json"):
            frame.to_json(target, orient="split", index=False, date_format="iso")
        else:
            frame.to_parquet(target, index=False)
        client.log_artifact(rid, target, folder)
    tags = client.get_run(rid).data.tags
    listed = json.loads(tags.get(LOGGED_ARTIFACTS_TAG) or "[]")
    entry = {"path": artifact_file, "type": "table"}
    if entry not in listed:
        listed.append(entry)
        client.set_tag(rid, LOGGED_ARTIFACTS_TAG, json.dumps(listed), synchronous=True)


def load_table(artifact_file: str, run_ids: list[str] | None = None,
               extra_columns: list[str] | None = None) -> Any:
    """The rows of a table artifact across runs (``run_id`` added as a column if asked)."""
    import pandas as pd

    from labtrack.client import fluent

    client = fluent._client()
    ids = run_ids or [fluent._run_id()]
    frames = []
    with tempfile.TemporaryDirectory(prefix="labtrack-table-") as tmp:
        for rid in ids:
            try:
                path = Path(client.download_artifacts(rid, artifact_file, Path(tmp) / rid))
            except Exception:
                continue
            frame = _read(path)
            for column in extra_columns or []:
                if column == "run_id":
                    frame[column] = rid
            frames.append(frame)
    if not frames:
        raise InvalidParameterValue(f"no run has a table {artifact_file!r}")
    return pd.concat(frames, ignore_index=True)

"""What autolog integrations write, through the fluent client and its non-blocking sender."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from labtrack.entities import Metric


def _client() -> Any:
    from labtrack.client import fluent

    return fluent._client()


def stringify(value: Any) -> str:
    return str(value)


def log_params(run_id: str, params: dict[str, Any]) -> None:
    """Params as MLflow's autolog writes them: ``str(value)``, queued."""
    if params:
        _client().log_batch(run_id, params={str(k): stringify(v) for k, v in params.items()})


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    if tags:
        _client().log_batch(run_id, tags={k: str(v) for k, v in tags.items()})


def log_metrics(run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
    """Finite numbers only, as one queued batch at ``step``."""
    import math

    now = int(time.time() * 1000)
    points = []
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isnan(number):
            points.append(Metric(key, number, now, int(step)))
    if points:
        _client().log_batch(run_id, metrics=points)


def log_dataset(run_id: str, features: Any, targets: Any = None, context: str = "train",
                name: str | None = None) -> None:
    """The training data as a run input (MLflow's digest/schema/profile; pandas or numpy)."""
    from labtrack.client import datasets

    dataset = dataset_of(features, targets, name)
    if dataset is not None:
        datasets.log_input(dataset, context=context, run_id=run_id)


def dataset_of(features: Any, targets: Any = None, name: str | None = None) -> Any:
    """An ``lt.data`` dataset for pandas / numpy / scipy-sparse training data, else None."""
    import numpy as np

    from labtrack.client import datasets

    if type(features).__module__.startswith("pandas") and hasattr(features, "columns"):
        return datasets.from_pandas(features, name=name)
    if hasattr(features, "toarray") and type(features).__module__.startswith("scipy"):
        features = features.toarray()
        if hasattr(targets, "toarray"):
            targets = targets.toarray()
    if isinstance(features, np.ndarray):
        if targets is not None and not isinstance(targets, np.ndarray):
            targets = np.asarray(targets)
        return datasets.from_numpy(features, targets=targets, name=name)
    return None


def log_figure(run_id: str, draw: Any, artifact_file: str) -> None:
    """Draw with matplotlib (Agg, no display needed) and log the PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure = draw()
    try:
        _client().log_figure(run_id, figure, artifact_file)
    finally:
        plt.close(figure)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    _client().log_text(run_id, text, artifact_file)


def log_file(run_id: str, write: Any, artifact_file: str) -> None:
    """``write(path)`` a file and log it as ``artifact_file``."""
    with tempfile.TemporaryDirectory(prefix="labtrack-autolog-") as tmp:
        target = Path(tmp) / Path(artifact_file).name
        write(target)
        folder = str(Path(artifact_file).parent)
        _client().log_artifact(run_id, target, None if folder in ("", ".") else folder)


def signature_for(model_input: Any, predict: Any) -> Any:
    """A signature from a few rows and the model's predictions on them, or None."""
    try:
        from labtrack.models.signature import infer_signature

        sample = model_input[:5] if not hasattr(model_input, "head") else model_input.head(5)
        return infer_signature(sample, predict(sample))
    except Exception:
        return None

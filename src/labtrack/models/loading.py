"""Loading a model folder as a pyfunc model, whoever wrote it (labtrack or MLflow).

The ``python_function`` flavor names a loader module.  The loaders of the
flavors labtrack knows (MLflow's names and labtrack's) are labtrack's own, so
serving an sklearn, pytorch or custom-python model needs no mlflow; any
other loader module is imported as it is (e.g. ``mlflow.xgboost``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from labtrack.models.mlmodel import ModelMeta

LOADERS = {
    "mlflow.sklearn": "labtrack.models.sklearn",
    "labtrack.models.sklearn": "labtrack.models.sklearn",
    "mlflow.pytorch": "labtrack.models.pytorch",
    "labtrack.models.pytorch": "labtrack.models.pytorch",
    "mlflow.pyfunc.model": "labtrack.models.python_model",
    "labtrack.models.python_model": "labtrack.models.python_model",
}


def local_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Path:
    """The model folder for ``model_uri``, downloaded from the tracking server when remote."""
    from labtrack.client import fluent
    from labtrack.client.model_uri import download_model

    dst = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="labtrack-model-"))
    return download_model(fluent._client(), model_uri, dst)


def _add_code_paths(folder: Path, conf: dict[str, Any]) -> None:
    """``code:`` in a flavor names a folder of the user's modules saved with the model."""
    code = conf.get("code")
    if code and (folder / code).is_dir() and str(folder / code) not in sys.path:
        sys.path.insert(0, str(folder / code))


def load_impl(folder: Path, meta: ModelMeta, model_config: dict[str, Any] | None = None) -> Any:
    """The flavor's pyfunc implementation: an object with ``predict(data[, params])``."""
    conf = meta.pyfunc
    _add_code_paths(folder, conf)
    loader = str(conf.get("loader_module", ""))
    if loader == "mlflow.pyfunc.model" and conf.get("model_code_path"):
        module_name = loader  # MLflow's models-from-code: only mlflow can run them
    else:
        module_name = LOADERS.get(loader, loader)
    module = importlib.import_module(module_name)
    data_path = folder / conf["data"] if conf.get("data") else folder
    config = {**(conf.get("model_config") or {}), **(model_config or {})}
    load = module._load_pyfunc
    if config and len(inspect.signature(load).parameters) > 1:
        return load(str(data_path), config)
    return load(str(data_path))

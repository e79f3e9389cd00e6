"""The pyfunc loader of custom Python models (``lt.pyfunc.log_model(python_model=...)``).

Also reads MLflow's own format (``loader_module: mlflow.pyfunc.model``): the
model object pickled as ``python_model.pkl``, its artifacts copied under
``artifacts/`` and listed in the flavor.  Unpickling runs code from the
model file: load only models you trust.
"""

from __future__ import annotations

import inspect
import pickle
import shutil
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.models.mlmodel import ModelMeta

PYTHON_MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"


class PythonModelContext:
    """What ``load_context``/``predict`` receive: the artifacts' local paths and the config."""

    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None) -> None:
        self.artifacts = artifacts
        self.model_config = model_config or {}

    def __repr__(self) -> str:
        return f"PythonModelContext(artifacts={self.artifacts!r})"


def _pickler() -> tuple[Any, str | None]:
    """cloudpickle when installed (it saves classes defined in a notebook by value)."""
    try:
        import cloudpickle

        return cloudpickle, cloudpickle.__version__
    except ImportError:
        return pickle, None


def save_python_model(folder: Path, python_model: Any) -> dict[str, Any]:
    """Pickle the model object; return the flavor's keys that describe it."""
    module, version = _pickler()
    with open(folder / PYTHON_MODEL_FILE, "wb") as out:
        module.dump(python_model, out, protocol=pickle.DEFAULT_PROTOCOL)
    conf: dict[str, Any] = {"python_model": PYTHON_MODEL_FILE}
    if version:
        conf["cloudpickle_version"] = version
    return conf


def copy_artifacts(folder: Path, artifacts: dict[str, str], fetch: Any) -> dict[str, Any]:
    """Copy each artifact (a local path, or a URI ``fetch`` downloads) under ``artifacts/``."""
    out: dict[str, Any] = {}
    if not artifacts:
        return out
    root = folder / ARTIFACTS_DIR
    root.mkdir(exist_ok=True)
    for name, uri in artifacts.items():
        local = fetch(uri)
        if not local.exists():
            raise InvalidParameterValue(f"artifact {name!r}: nothing at {uri}")
        target = root / local.name
        if target.exists():
            raise InvalidParameterValue(f"artifact {name!r}: two artifacts are named {local.name!r}")
        if local.is_dir():
            shutil.copytree(local, target)
        else:
            shutil.copy2(local, target)
        out[name] = {"path": f"{ARTIFACTS_DIR}/{local.name}", "uri": str(uri)}
    return out


def context_for(folder: Path, conf: dict[str, Any],
                model_config: dict[str, Any] | None = None) -> PythonModelContext:
    artifacts = {name: str(folder / info["path"])
                 for name, info in (conf.get("artifacts") or {}).items()}
    return PythonModelContext(artifacts, model_config)


def takes_context(fn: Any) -> bool:
    """``predict(self, context, model_input, ...)`` or ``predict(self, model_input, ...)``?

    The same rule as MLflow: a parameter named ``context``, or two inputs besides ``params``.
    """
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return "context" in parameters or len(
        [p for p in parameters if p not in ("self", "params")]) == 2


class PythonModelWrapper:
    """A loaded custom model: ``predict(data, params=None)`` calls the user's ``predict``."""

    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        fn = self.python_model.predict
        try:
            accepts_params = "params" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            accepts_params = False
        kwargs = {"params": params} if accepts_params else {}
        if takes_context(fn):
            return fn(self.context, model_input, **kwargs)
        return fn(model_input, **kwargs)

    def unwrap_python_model(self) -> Any:
        return self.python_model


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> PythonModelWrapper:
    """Called by pyfunc loaders (labtrack's and MLflow's) with the model folder."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    conf = ModelMeta.load(folder).pyfunc
    model_file = folder / conf.get("python_model", PYTHON_MODEL_FILE)
    compression = conf.get("python_model_compression")
    with open(model_file, "rb") as f:
        raw = f.read()
    if compression:
        raw = _decompress(raw, compression)
    python_model = pickle.loads(raw)  # cloudpickle streams unpickle with pickle
    context = context_for(folder, conf, model_config)
    if hasattr(python_model, "load_context"):
        python_model.load_context(context)
    return PythonModelWrapper(python_model, context)


def _decompress(raw: bytes, compression: str) -> bytes:
    import bz2
    import gzip
    import lzma

    codecs = {"lzma": lzma.decompress, "bzip2": bz2.decompress, "gzip": gzip.decompress}
    if compression not in codecs:
        raise InvalidParameterValue(f"unknown python_model_compression {compression!r}")
    return codecs[compression](raw)

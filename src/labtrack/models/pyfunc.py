"""``lt.pyfunc``: any model as a Python function, and custom models written as a class.

``load_model(uri)`` loads a model folder that labtrack or MLflow wrote
(sklearn, pytorch, custom Python models...) into a :class:`PyFuncModel`
whose ``predict`` checks the input against the model's signature first.
``log_model(name, python_model=...)`` saves an instance of a
:class:`PythonModel` subclass (or a plain function) with its artifacts.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

from labtrack._version import __version__
from labtrack.errors import InvalidParameterValue
from labtrack.models.mlmodel import ModelMeta
from labtrack.models.python_model import PythonModelContext
from labtrack.models.saving import add_example_and_signature, finish_model, model_folder
from labtrack.models.upload import ModelInfo

FLAVOR = "python_function"
LOADER_MODULE = "labtrack.models.python_model"

__all__ = ["ModelInfo", "PyFuncModel", "PythonModel", "PythonModelContext", "load_model",
           "log_model", "save_model"]


class PythonModel:
    """Base class of custom models: override ``predict`` (and ``load_context`` if needed).

    ``predict(self, context, model_input, params=None)`` gets the input as a
    DataFrame (or array, per the signature); ``context.artifacts`` maps each
    artifact's name to its local path.
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Called once after loading: read artifacts, build what ``predict`` needs."""

    def predict(self, context: PythonModelContext, model_input: Any,
                params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError


class _FunctionModel(PythonModel):
    """A plain ``predict(model_input)`` function saved as a model."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def predict(self, context: PythonModelContext, model_input: Any,
                params: dict[str, Any] | None = None) -> Any:
        return self.fn(model_input)


class PyFuncModel:
    """A loaded model: ``predict(data, params=None)``, whichever flavor it was saved with."""

    def __init__(self, meta: ModelMeta, impl: Any, folder: Path) -> None:
        self._meta = meta
        self._impl = impl
        self.folder = folder
        conf = meta.pyfunc
        self._predict = getattr(impl, conf.get("predict_fn") or "predict")
        try:
            self._takes_params = "params" in inspect.signature(self._predict).parameters
        except (TypeError, ValueError):
            self._takes_params = False

    @property
    def metadata(self) -> ModelMeta:
        return self._meta

    @property
    def signature(self) -> dict[str, Any] | None:
        return self._meta.signature

    @property
    def loader_module(self) -> str:
        return str(self._meta.pyfunc.get("loader_module"))

    def input_example(self) -> Any:
        """The input example saved with the model (None if none was)."""
        from labtrack.models.example import load_example

        return load_example(self.folder, self._meta.saved_input_example_info)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict; ``data`` is checked and converted per the signature (BadRequest if wrong)."""
        from labtrack.models.signature import enforce, input_specs

        data = enforce(data, input_specs(self._meta.signature))
        if self._takes_params:
            return self._predict(data, params=params)
        return self._predict(data)

    def unwrap_python_model(self) -> Any:
        """The user's ``PythonModel`` instance (custom models only)."""
        unwrap = getattr(self._impl, "unwrap_python_model", None)
        if unwrap is None:
            raise InvalidParameterValue("this is not a custom Python model")
        return unwrap()

    def get_raw_model(self) -> Any:
        """The framework's own object (an sklearn estimator, a torch module...)."""
        for attr in ("get_raw_model", "unwrap_python_model"):
            if hasattr(self._impl, attr):
                return getattr(self._impl, attr)()
        return self._impl

    def __repr__(self) -> str:
        return f"PyFuncModel(loader_module={self.loader_module!r}, folder={str(self.folder)!r})"


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None,
               model_config: dict[str, Any] | None = None) -> PyFuncModel:
    """Load a model (``runs:/``, ``models:/``, an artifact URI or a local folder) as a pyfunc."""
    from labtrack.models.loading import load_impl, local_model

    folder = local_model(model_uri, dst_path)
    meta = ModelMeta.load(folder)
    return PyFuncModel(meta, load_impl(folder, meta, model_config), folder)


def load_folder(folder: str | os.PathLike) -> PyFuncModel:
    """Load a local model folder (no tracking server involved)."""
    from labtrack.models.loading import load_impl

    path = Path(folder)
    meta = ModelMeta.load(path)
    return PyFuncModel(meta, load_impl(path, meta), path)


def _fetch_artifact(uri: str) -> Path:
    """A local path for a pyfunc artifact: a path, ``file://`` or a run's artifact."""
    if uri.startswith("runs:/"):
        from labtrack.client import fluent

        return Path(fluent.download_artifacts(artifact_uri=uri,
                                               dst_path=tempfile.mkdtemp(prefix="labtrack-")))
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return Path(uri)


def save_model(path: str | os.PathLike, python_model: Any = None, *,
               artifacts: dict[str, str] | None = None, signature: Any = None,
               input_example: Any = None, pip_requirements: list[str] | None = None,
               extra_pip_requirements: list[str] | None = None,
               metadata: dict[str, Any] | None = None) -> ModelMeta:
    """Save a custom model (a ``PythonModel`` instance or a function) into a new folder."""
    from labtrack.models.environment import pinned
    from labtrack.models.python_model import (PythonModelWrapper, context_for, copy_artifacts,
                                              save_python_model)

    if python_model is None:
        raise InvalidParameterValue("save_model needs python_model")
    if not hasattr(python_model, "predict"):
        if not callable(python_model):
            raise InvalidParameterValue("python_model must have a predict method or be callable")
        python_model = _FunctionModel(python_model)
    with model_folder(path) as folder:
        meta = ModelMeta(metadata=metadata)
        conf: dict[str, Any] = save_python_model(folder, python_model)
        saved = copy_artifacts(folder, artifacts or {}, _fetch_artifact)
        if saved:
            conf["artifacts"] = saved
        meta.add_pyfunc(LOADER_MODULE, **conf)

        def predict(example: Any) -> Any:
            context = context_for(folder, conf)
            if hasattr(python_model, "load_context"):
                python_model.load_context(context)
            return PythonModelWrapper(python_model, context).predict(example)

        add_example_and_signature(folder, meta, input_example, signature, predict)
        default = [f"labtrack=={__version__}"]
        if "cloudpickle_version" in conf:
            default.append(pinned("cloudpickle"))
        return finish_model(folder, meta, default, pip_requirements, extra_pip_requirements)


def log_model(name: str | None = None, python_model: Any = None, *,
              artifacts: dict[str, str] | None = None, registered_model_name: str | None = None,
              signature: Any = None, input_example: Any = None,
              pip_requirements: list[str] | None = None,
              extra_pip_requirements: list[str] | None = None,
              metadata: dict[str, Any] | None = None, artifact_path: str | None = None,
              run_id: str | None = None, await_registration_for: int = 300) -> ModelInfo:
    """Save a custom model into the active run under ``name``; register it if asked."""
    from labtrack.models.upload import log_model as upload, model_name

    def save(folder: Path) -> ModelMeta:
        return save_model(folder, python_model, artifacts=artifacts, signature=signature,
                          input_example=input_example, pip_requirements=pip_requirements,
                          extra_pip_requirements=extra_pip_requirements, metadata=metadata)

    return upload(model_name(name, artifact_path), save,
                  registered_model_name=registered_model_name, run_id=run_id,
                  await_registration_for=await_registration_for)

"""``lt.sklearn``: scikit-learn models in MLflow's sklearn format.

The folder is the one ``mlflow.sklearn.save_model`` writes (``loader_module:
mlflow.sklearn``, flavor ``sklearn`` with ``serialization_format``), so
MLflow loads it without labtrack, and labtrack loads MLflow's (pickle,
cloudpickle or skops) without mlflow.  Loading a pickle runs code from the
file: load only models you trust.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue, require_extra
from labtrack.models.mlmodel import ModelMeta
from labtrack.models.upload import ModelInfo

FLAVOR = "sklearn"
LOADER_MODULE = "mlflow.sklearn"  # MLflow's loader reads this format; labtrack maps it to this module
SERIALIZATION_FORMATS = ("cloudpickle", "pickle", "skops")
_FILES = {"cloudpickle": "model.pkl", "pickle": "model.pkl", "skops": "model.skops"}

__all__ = ["FLAVOR", "SERIALIZATION_FORMATS", "autolog", "load_model", "log_model", "save_model"]


def _default_format() -> str:
    # cloudpickle keeps estimators whose classes were defined in a notebook loadable elsewhere.
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        return "pickle"
    return "cloudpickle"


def _dump(sk_model: Any, target: Path, fmt: str) -> None:
    """Write the estimator (skops refuses types it does not trust at load time, e.g. trees)."""
    if fmt == "skops":
        require_extra("skops.io", "models", "the skops format").dump(sk_model, target)
        return
    module: Any = pickle
    if fmt == "cloudpickle":
        import cloudpickle

        module = cloudpickle
    with open(target, "wb") as out:
        # The default protocol, as MLflow uses: loadable by older Pythons too.
        module.dump(sk_model, out, protocol=pickle.DEFAULT_PROTOCOL)


def save_model(sk_model: Any, path: str | os.PathLike, *, serialization_format: str | None = None,
               signature: Any = None, input_example: Any = None,
               pip_requirements: list[str] | None = None,
               extra_pip_requirements: list[str] | None = None,
               pyfunc_predict_fn: str = "predict",
               metadata: dict[str, Any] | None = None,
               skops_trusted_types: list[str] | None = None) -> ModelMeta:
    """Save an estimator into a new folder; the signature is inferred from ``input_example``.

    ``skops_trusted_types`` (skops format only) lists the types loading may
    trust beyond skops' defaults, e.g. ``["sklearn.tree._tree.Tree"]``.
    """
    import sklearn

    from labtrack.models.environment import pinned
    from labtrack.models.saving import add_example_and_signature, finish_model, model_folder

    fmt = serialization_format or _default_format()
    if fmt not in SERIALIZATION_FORMATS:
        raise InvalidParameterValue(f"serialization_format must be one of {SERIALIZATION_FORMATS}")
    with model_folder(path) as folder:
        meta = ModelMeta(metadata=metadata)
        model_file = _FILES[fmt]
        _dump(sk_model, folder / model_file, fmt)
        add_example_and_signature(folder, meta, input_example, signature, getattr(sk_model, pyfunc_predict_fn, None))
        if hasattr(sk_model, pyfunc_predict_fn):
            meta.add_pyfunc(LOADER_MODULE, model_path=model_file, predict_fn=pyfunc_predict_fn)
        meta.add_flavor(FLAVOR, pickled_model=model_file, sklearn_version=sklearn.__version__,
                        serialization_format=fmt, code=None,
                        **({"skops_trusted_types": list(skops_trusted_types)}
                           if skops_trusted_types else {}))
        default = [pinned("scikit-learn")]
        if fmt != "pickle":
            default.append(pinned(fmt))
        return finish_model(folder, meta, default, pip_requirements, extra_pip_requirements)


def log_model(sk_model: Any, name: str | None = None, *, registered_model_name: str | None = None,
              serialization_format: str | None = None, signature: Any = None,
              input_example: Any = None, pip_requirements: list[str] | None = None,
              extra_pip_requirements: list[str] | None = None, pyfunc_predict_fn: str = "predict",
              metadata: dict[str, Any] | None = None, artifact_path: str | None = None,
              run_id: str | None = None, await_registration_for: int = 300,
              skops_trusted_types: list[str] | None = None) -> ModelInfo:
    """Save an estimator into the active run under ``name``; register it if asked."""
    from labtrack.models.upload import log_model as upload, model_name

    def save(folder: Path) -> ModelMeta:
        return save_model(sk_model, folder, serialization_format=serialization_format,
                          signature=signature, input_example=input_example,
                          pip_requirements=pip_requirements,
                          extra_pip_requirements=extra_pip_requirements,
                          pyfunc_predict_fn=pyfunc_predict_fn, metadata=metadata,
                          skops_trusted_types=skops_trusted_types)

    return upload(model_name(name, artifact_path), save,
                  registered_model_name=registered_model_name, run_id=run_id,
                  await_registration_for=await_registration_for)


def _load_file(path: Path, fmt: str, trusted: list[str] | None = None) -> Any:
    if fmt not in SERIALIZATION_FORMATS:
        raise InvalidParameterValue(f"unknown serialization_format {fmt!r}")
    if fmt == "skops":
        # MLflow 3.17 saves sklearn models in skops format by default.
        return require_extra("skops.io", "models", "a model in skops format").load(path, trusted=trusted)
    with open(path, "rb") as f:
        # A cloudpickle stream unpickles with pickle (cloudpickle must be importable).
        return pickle.load(f)


def _load_folder(folder: Path) -> Any:
    meta = ModelMeta.load(folder)
    conf = meta.flavors.get(FLAVOR)
    if conf is None:  # an old model with only the pyfunc flavor: a plain pickle
        return _load_file(folder / meta.pyfunc["model_path"], "pickle")
    return _load_file(folder / conf["pickled_model"], conf.get("serialization_format", "pickle"),
                      conf.get("skops_trusted_types"))


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """The estimator saved at ``model_uri`` (``runs:/``, ``models:/``... or a local folder)."""
    from labtrack.models.loading import local_model

    return _load_folder(local_model(model_uri, dst_path))


class _SklearnWrapper:
    """The pyfunc face of an estimator."""

    def __init__(self, sk_model: Any) -> None:
        self.sklearn_model = sk_model

    def get_raw_model(self) -> Any:
        return self.sklearn_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.sklearn_model.predict(data)

    def __getattr__(self, name: str) -> Any:
        # predict_proba & co., for models saved with pyfunc_predict_fn="predict_proba"
        if name.startswith("predict") or name == "score":
            return getattr(self.sklearn_model, name)
        raise AttributeError(name)


def _load_pyfunc(path: str) -> _SklearnWrapper:
    """Called by the pyfunc loader with the model folder (or the model file in it)."""
    target = Path(path)
    folder = target.parent if target.is_file() else target
    return _SklearnWrapper(_load_folder(folder))


def autolog(**settings: Any) -> None:
    """Log every ``fit`` (see ``labtrack.autolog.sklearn.autolog`` for MLflow's arguments)."""
    from labtrack.autolog.sklearn import autolog as enable

    enable(**settings)

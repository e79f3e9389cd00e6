"""XGBoost and LightGBM models in MLflow's ``xgboost`` / ``lightgbm`` formats (what autolog logs).

The folders are the ones ``mlflow.xgboost.save_model`` and ``mlflow.lightgbm.save_model``
write (``model.ubj`` / ``model.lgb`` with the flavor's version, data file and model
class, and a ``python_function`` flavor), so MLflow loads them without labtrack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labtrack.models.mlmodel import ModelMeta
from labtrack.models.upload import ModelInfo


def _class_name(model: Any) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__name__}"


def save_xgboost(model: Any, path: str | Path, *, model_format: str = "ubj", signature: Any = None,
                 input_example: Any = None) -> ModelMeta:
    """Save a Booster (or XGBoost sklearn estimator) in MLflow's xgboost format."""
    import xgboost

    from labtrack.models.environment import pinned
    from labtrack.models.saving import add_example_and_signature, finish_model, model_folder

    with model_folder(path) as folder:
        meta = ModelMeta()
        data = f"model.{model_format}"
        model.save_model(str(folder / data))
        add_example_and_signature(folder, meta, input_example, signature, None)
        meta.add_pyfunc("mlflow.xgboost", data=data, code=None)
        meta.add_flavor("xgboost", xgb_version=xgboost.__version__, data=data,
                        model_class=_class_name(model), model_format=model_format, code=None)
        return finish_model(folder, meta, [pinned("xgboost")], None, None)


def save_lightgbm(model: Any, path: str | Path, *, signature: Any = None,
                  input_example: Any = None) -> ModelMeta:
    """Save a Booster in MLflow's lightgbm format (``model.lgb``; sklearn estimators pickled)."""
    import lightgbm

    from labtrack.models.environment import pinned
    from labtrack.models.saving import add_example_and_signature, finish_model, model_folder

    with model_folder(path) as folder:
        meta = ModelMeta()
        if isinstance(model, lightgbm.Booster):
            data, fmt = "model.lgb", None
            model.save_model(str(folder / data))
        else:
            import cloudpickle

            data, fmt = "model.pkl", "cloudpickle"
            with open(folder / data, "wb") as out:
                cloudpickle.dump(model, out)
        add_example_and_signature(folder, meta, input_example, signature, None)
        meta.add_pyfunc("mlflow.lightgbm", data=data, code=None)
        meta.add_flavor("lightgbm", lgb_version=lightgbm.__version__, data=data,
                        model_class=_class_name(model), code=None, serialization_format=fmt,
                        skops_trusted_types=None)
        return finish_model(folder, meta, [pinned("lightgbm")], None, None)


def log_booster(model: Any, library: str, name: str = "model", *, run_id: str | None = None,
                signature: Any = None, registered_model_name: str | None = None) -> ModelInfo:
    """Log an XGBoost or LightGBM model into the run in MLflow's format for ``library``."""
    from labtrack.models.upload import log_model

    save = save_xgboost if library == "xgboost" else save_lightgbm
    return log_model(name, lambda folder: save(model, folder, signature=signature),
                     registered_model_name=registered_model_name, run_id=run_id)

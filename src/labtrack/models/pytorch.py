"""``lt.pytorch``: ``torch.nn.Module`` models in MLflow's pytorch format (CPU).

The module is saved whole with ``torch.save`` (cloudpickle when installed,
so a class defined in a notebook travels with it) as ``data/model.pth``;
MLflow's ``pt2`` (``torch.export``) folders load too.  Loading a pickle runs
code from the file: load only models you trust.
"""

from __future__ import annotations

import os
import pickle
import types
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue, require_extra
from labtrack.models.mlmodel import ModelMeta
from labtrack.models.upload import ModelInfo

FLAVOR = "pytorch"
LOADER_MODULE = "mlflow.pytorch"
DATA_DIR = "data"
MODEL_FILE = "model.pth"
EXPORTED_FILE = "model.pt2"
PICKLE_MODULE_FILE = "pickle_module_info.txt"

__all__ = ["FLAVOR", "load_model", "log_model", "save_model"]


def _pickle_module() -> Any:
    """What ``torch.save`` pickles with: cloudpickle's pickler when installed.

    Its streams unpickle with the standard ``pickle``, which is the module the
    folder names for loading (MLflow's loader imports it by that name).
    """
    try:
        from cloudpickle import CloudPickler
    except ImportError:
        return pickle
    return types.SimpleNamespace(Pickler=CloudPickler, Unpickler=pickle.Unpickler,
                                 __name__="pickle")


def save_model(pytorch_model: Any, path: str | os.PathLike, *, signature: Any = None,
               input_example: Any = None, pip_requirements: list[str] | None = None,
               extra_pip_requirements: list[str] | None = None,
               metadata: dict[str, Any] | None = None) -> ModelMeta:
    """Save a module into a new folder; the signature is inferred from ``input_example``."""
    torch = require_extra("torch", "pytorch", "a PyTorch model")

    from labtrack.models.environment import pinned
    from labtrack.models.saving import add_example_and_signature, finish_model, model_folder

    if not isinstance(pytorch_model, torch.nn.Module):
        raise InvalidParameterValue("pytorch_model must be a torch.nn.Module")
    with model_folder(path) as folder:
        meta = ModelMeta(metadata=metadata)
        data = folder / DATA_DIR
        data.mkdir()
        module = _pickle_module()
        (data / PICKLE_MODULE_FILE).write_text("pickle")
        torch.save(pytorch_model, data / MODEL_FILE, pickle_module=module)
        add_example_and_signature(folder, meta, input_example, signature, _Wrapper(pytorch_model).predict)
        meta.add_flavor(FLAVOR, model_data=DATA_DIR, pytorch_version=str(torch.__version__),
                        code=None)
        meta.add_pyfunc(LOADER_MODULE, data=DATA_DIR, pickle_module_name="pickle", code=None,
                        model_config={"device": None})
        default = [pinned("torch")]
        if module is not pickle:
            default.append(pinned("cloudpickle"))
        return finish_model(folder, meta, default, pip_requirements, extra_pip_requirements)


def log_model(pytorch_model: Any, name: str | None = None, *,
              registered_model_name: str | None = None, signature: Any = None,
              input_example: Any = None, pip_requirements: list[str] | None = None,
              extra_pip_requirements: list[str] | None = None,
              metadata: dict[str, Any] | None = None, artifact_path: str | None = None,
              run_id: str | None = None, await_registration_for: int = 300) -> ModelInfo:
    """Save a module into the active run under ``name``; register it if asked."""
    from labtrack.models.upload import log_model as upload, model_name

    def save(folder: Path) -> ModelMeta:
        return save_model(pytorch_model, folder, signature=signature, input_example=input_example,
                          pip_requirements=pip_requirements,
                          extra_pip_requirements=extra_pip_requirements, metadata=metadata)

    return upload(model_name(name, artifact_path), save,
                  registered_model_name=registered_model_name, run_id=run_id,
                  await_registration_for=await_registration_for)


def _load_data(data: Path) -> Any:
    """The module in a ``data`` folder: a pickled ``model.pth`` or an exported ``model.pt2``."""
    torch = require_extra("torch", "pytorch", "a PyTorch model")

    if (data / MODEL_FILE).is_file():
        # Whatever module name the folder records, the stream is a pickle stream
        # (mlflow.pytorch.pickle_module is cloudpickle's pickler with pickle's Unpickler).
        model = torch.load(data / MODEL_FILE, map_location="cpu", weights_only=False,
                           pickle_module=pickle)
        model.eval()
        return model
    if (data / EXPORTED_FILE).is_file():
        return torch.export.load(str(data / EXPORTED_FILE)).module()
    raise InvalidParameterValue(f"no {MODEL_FILE} or {EXPORTED_FILE} in {data}")


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """The ``torch.nn.Module`` saved at ``model_uri``, on the CPU, in eval mode."""
    from labtrack.models.loading import local_model

    folder = local_model(model_uri, dst_path)
    conf = ModelMeta.load(folder).flavor(FLAVOR)
    return _load_data(folder / conf.get("model_data", DATA_DIR))


class _Wrapper:
    """The pyfunc face of a module: a DataFrame or array in, an array (or DataFrame) out."""

    def __init__(self, module: Any) -> None:
        self.pytorch_model = module

    def get_raw_model(self) -> Any:
        return self.pytorch_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd
        import torch

        frame = isinstance(data, pd.DataFrame)
        if frame:
            array = data.to_numpy(dtype=np.float32)
        elif isinstance(data, np.ndarray):
            array = data
        else:
            raise InvalidParameterValue("the pytorch flavor takes a DataFrame or a numpy array")
        with torch.no_grad():
            out = self.pytorch_model(torch.from_numpy(np.ascontiguousarray(array)))
        if not isinstance(out, torch.Tensor):
            raise InvalidParameterValue(f"the module returned {type(out).__name__}, not a tensor")
        result = out.cpu().numpy()
        if frame:
            predicted = pd.DataFrame(result)
            predicted.index = data.index
            return predicted
        return result


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _Wrapper:
    """Called by the pyfunc loader with the model's ``data`` folder."""
    return _Wrapper(_load_data(Path(path)))


def autolog(**settings: Any) -> None:
    """Log every Lightning ``Trainer.fit`` (``labtrack.autolog.lightning.autolog`` has MLflow's
    arguments)."""
    from labtrack.autolog.lightning import autolog as enable

    enable(**settings)

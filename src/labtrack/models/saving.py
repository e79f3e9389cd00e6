"""The steps every flavor's ``save_model`` shares: the new folder, the example and
signature, the environment files and the MLmodel file."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.models.mlmodel import ModelMeta, folder_size


def resolve_signature(signature: Any) -> dict[str, Any] | None:
    """A signature given by the user: a dict, MLflow's ``ModelSignature``, or None/False."""
    if signature is None or signature is False:
        return None
    if hasattr(signature, "to_dict"):
        signature = signature.to_dict()
    if not isinstance(signature, dict) or "inputs" not in signature:
        raise InvalidParameterValue("signature must be a dict with 'inputs' (and 'outputs') "
                                    "or an mlflow ModelSignature")
    return signature


def prepare_folder(path: str | os.PathLike) -> Path:
    """A new, empty model folder (refuse to overwrite one, as MLflow does)."""
    folder = Path(path)
    if folder.exists() and any(folder.iterdir()):
        raise InvalidParameterValue(f"path {folder} already exists and is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def model_folder(path: str | os.PathLike) -> Iterator[Path]:
    """``prepare_folder``, removed again if saving into it fails: no half-written model."""
    folder = prepare_folder(path)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def add_example_and_signature(folder: Path, meta: ModelMeta, input_example: Any, signature: Any,
                              predict: Callable[[Any], Any] | None) -> None:
    """Save the input example; the signature is the one given, else inferred from ``predict(example)``."""
    from labtrack.models.example import save_example
    from labtrack.models.signature import infer_signature

    example = None
    if input_example is not None:
        meta.saved_input_example_info, example = save_example(folder, input_example)
    meta.signature = resolve_signature(signature)
    if signature is None and example is not None and predict is not None:
        meta.signature = infer_signature(example, predict(example))


def finish_model(folder: Path, meta: ModelMeta, default_requirements: list[str],
                 pip_requirements: list[str] | None, extra_pip_requirements: list[str] | None) -> ModelMeta:
    """Write the environment files, then the MLmodel file (with the folder's size)."""
    from labtrack.models.environment import requirements, write_environment

    write_environment(folder, requirements(default_requirements, pip_requirements, extra_pip_requirements))
    meta.model_size_bytes = folder_size(folder)
    meta.save(folder)
    return meta

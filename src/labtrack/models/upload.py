"""``log_model``: save a model folder, upload it into a run, record it, register it.

The folder goes to the run's artifacts under ``<name>/`` (where MLflow 2 and
``runs:/<run>/<name>`` look).  Where the server has MLflow 3's logged models,
it also becomes a logged model (its own copy of the files, linked to the run
as an output, finalized READY), so MLflow 3 tools find it too.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue, LabtrackError
from labtrack.models.mlmodel import ModelMeta

_NO_LOGGED_MODELS = ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED", "BAD_REQUEST")


@dataclass
class ModelInfo:
    """What ``log_model`` returns (MLflow's ``ModelInfo`` fields)."""

    artifact_path: str
    flavors: dict[str, Any]
    model_uri: str
    run_id: str
    model_uuid: str
    utc_time_created: str
    signature: dict[str, Any] | None
    saved_input_example_info: dict[str, Any] | None
    metadata: dict[str, Any] | None
    model_id: str | None = None
    registered_model_version: str | None = None

    @property
    def name(self) -> str:
        return self.artifact_path

    @property
    def run_model_uri(self) -> str:
        """``runs:/<run_id>/<name>``: the same model through its run."""
        return f"runs:/{self.run_id}/{self.artifact_path}"


def model_name(name: str | None, artifact_path: str | None) -> str:
    """``name`` (MLflow 3) or the older ``artifact_path``; a plain folder name either way."""
    chosen = name or artifact_path or "model"
    if chosen.strip("/") != chosen or ".." in chosen.split("/") or "\\" in chosen:
        raise InvalidParameterValue(f"invalid model name {chosen!r}")
    return chosen


def log_model(name: str, save: Callable[[Path], ModelMeta], *,
              registered_model_name: str | None = None, run_id: str | None = None,
              await_registration_for: int = 300, client: Any = None) -> ModelInfo:
    """Run ``save(folder)`` into a fresh folder, then upload, record and register it."""
    from labtrack.client import fluent

    client = client or fluent._client()
    run_id = run_id or fluent._run_id()
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="labtrack-model-") as tmp:
        folder = Path(tmp) / name.rsplit("/", 1)[-1]
        folder.mkdir()
        meta = save(folder)
        logged = _create_logged_model(client, run, name)
        meta.run_id, meta.artifact_path = run_id, name
        meta.model_id = logged.model_id if logged is not None else None
        meta.save(folder)
        _upload(client, run_id, name, folder, logged)
    info = ModelInfo(
        artifact_path=name, flavors=meta.flavors,
        model_uri=f"models:/{logged.model_id}" if logged is not None else f"runs:/{run_id}/{name}",
        run_id=run_id, model_uuid=meta.model_uuid, utc_time_created=meta.utc_time_created,
        signature=meta.signature, saved_input_example_info=meta.saved_input_example_info,
        metadata=meta.metadata, model_id=meta.model_id)
    if registered_model_name:
        from labtrack.client.registry import register_model

        # As MLflow 3's log_model: the logged model (models:/<model_id>) when the server has
        # them; MLflow 3.17's server refuses a run's artifact folder as the source of a
        # version that names a model_id.
        version = register_model(info.model_uri, registered_model_name,
                                 await_registration_for, client=client)
        info.registered_model_version = version.version
    return info


def _create_logged_model(client: Any, run: Any, name: str) -> Any:
    """A PENDING logged model for this run, or None on a server without them (MLflow 2)."""
    try:
        model = client.create_logged_model(run.info.experiment_id, name=name,
                                           source_run_id=run.info.run_id, params=run.params)
    except LabtrackError as err:
        if err.error_code in _NO_LOGGED_MODELS:
            return None
        raise
    client.log_outputs(run.info.run_id, [model.model_id])
    return model


def _upload(client: Any, run_id: str, name: str, folder: Path, logged: Any) -> None:
    """The files into the run (``<name>/``) and the logged model; then mark it READY.

    A failed upload marks the logged model UPLOAD_FAILED, so no tool takes
    a half-uploaded model for a finished one.
    """
    from labtrack.client.artifact_repo import ArtifactRepo
    from labtrack.client.logged_models import READY, UPLOAD_FAILED

    try:
        client.log_artifacts(run_id, folder, name)
        if logged is not None:
            ArtifactRepo(client.transport, logged.artifact_uri).log_dir(folder)
    except BaseException:
        if logged is not None:
            with contextlib.suppress(LabtrackError):
                client.finalize_logged_model(logged.model_id, UPLOAD_FAILED)
        raise
    if logged is not None:
        client.finalize_logged_model(logged.model_id, READY)

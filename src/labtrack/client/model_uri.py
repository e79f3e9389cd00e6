"""Model URIs: ``runs:/<run>/<path>``, ``models:/<name>/<version|stage|latest>``,
``models:/<name>@<alias>``, ``models:/<model_id>``; and where their files are.

Parsing is pure; resolving asks the tracking server through a ``Client``
(passed in, so this module imports nothing heavier than the entities).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue, LabtrackError, ResourceDoesNotExist

# A logged model's id (the server makes ``m-<32 hex>``; MLflow's client accepts this shape).
_MODEL_ID = re.compile(r"^m-[A-Za-z0-9_\-]+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
_MAX_HOPS = 5  # a version's source may itself be a models:/ or runs:/ URI


@dataclass(frozen=True)
class ModelRef:
    """What a model URI names, before the server is asked."""

    kind: str  # "run" | "model_id" | "version" | "stage" | "alias" | "latest" | "uri"
    uri: str
    name: str | None = None
    ref: str | None = None  # version digits, stage name or alias
    run_id: str | None = None
    path: str = ""
    model_id: str | None = None

    def resolve_version(self, client: Any) -> str:
        """The version number a registry reference names (asks the server)."""
        assert self.name is not None
        if self.kind == "version":
            return str(self.ref)
        if self.kind == "alias":
            return client.get_model_version_by_alias(self.name, self.ref).version
        stages = None if self.kind == "latest" else [self.ref]
        versions = client.get_latest_versions(self.name, stages)
        if not versions:
            where = "" if self.kind == "latest" else f" in stage {self.ref!r}"
            raise ResourceDoesNotExist(f"registered model {self.name!r} has no version{where}")
        return max(versions, key=lambda v: int(v.version)).version


def parse_model_uri(uri: str) -> ModelRef:
    """Split a model URI into its parts; anything not ``runs:/``/``models:/`` is kind "uri"."""
    if not isinstance(uri, str) or not uri:
        raise InvalidParameterValue(f"not a model URI: {uri!r}")
    if uri.startswith("runs:"):
        rest = uri[len("runs:"):].lstrip("/")
        run_id, _, path = rest.partition("/")
        if not run_id:
            raise InvalidParameterValue(f"{uri!r}: expected runs:/<run_id>/<path>")
        return ModelRef("run", uri, run_id=run_id, path=path.strip("/"))
    if not uri.startswith("models:"):
        return ModelRef("uri", uri)
    rest = uri[len("models:"):]
    if not rest.startswith("/") or rest.startswith("//"):
        raise InvalidParameterValue(
            f"{uri!r}: expected models:/<name>/<version|stage>, models:/<name>@<alias> "
            "or models:/<model_id>")
    parts = rest.strip("/").split("/")
    if len(parts) == 1:
        name, at, alias = parts[0].partition("@")
        if at:
            if not name or not alias:
                raise InvalidParameterValue(f"{uri!r}: expected models:/<name>@<alias>")
            return ModelRef("alias", uri, name=name, ref=alias)
        if _MODEL_ID.match(name):
            return ModelRef("model_id", uri, model_id=name)
        raise InvalidParameterValue(
            f"{uri!r}: name a version (models:/{name}/1), a stage (models:/{name}/Production), "
            f"an alias (models:/{name}@champion) or a logged model (models:/m-...)")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise InvalidParameterValue(f"{uri!r}: expected models:/<name>/<version|stage>")
    name, suffix = parts
    if suffix.isdigit():
        return ModelRef("version", uri, name=name, ref=str(int(suffix)))
    if suffix.lower() == "latest":
        return ModelRef("latest", uri, name=name)
    return ModelRef("stage", uri, name=name, ref=suffix)


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.strip("/") if path.strip("/") else base


def _logged_model_of_run(client: Any, run: Any, path: str) -> Any:
    """The logged model a run produced under ``name = path`` (MLflow 3's resolution)."""
    if not path or "/" in path:
        return None
    try:
        page = client.search_logged_models([run.info.experiment_id],
                                           filter_string=f"name = '{path}'")
    except LabtrackError:
        return None  # a server without logged models
    matches = [m for m in page if m.source_run_id == run.info.run_id]
    return max(matches, key=lambda m: m.creation_timestamp_ms) if matches else None


def _run_artifacts(client: Any, ref: ModelRef) -> tuple[Any, bool]:
    """The run and whether it has files under ``ref.path``."""
    run = client.get_run(ref.run_id)
    listed = bool(client.list_artifacts(ref.run_id, ref.path or None))
    return run, listed


def artifact_uri_of(client: Any, uri: str) -> str:
    """The artifact URI where the files of the model ``uri`` are."""
    for _ in range(_MAX_HOPS):
        ref = parse_model_uri(uri)
        if ref.kind == "uri":
            return uri
        if ref.kind == "model_id":
            return client.get_logged_model(ref.model_id).artifact_uri
        if ref.kind == "run":
            run, listed = _run_artifacts(client, ref)
            if not listed:
                model = _logged_model_of_run(client, run, ref.path)
                if model is not None:
                    return model.artifact_uri
            return _join(run.info.artifact_uri, ref.path)
        uri = client.get_model_version_download_uri(ref.name, ref.resolve_version(client))
    raise InvalidParameterValue(f"model URI {uri!r}: too many levels of indirection")


def download_model(client: Any, uri: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Bring the model at ``uri`` into the folder ``dst``; a local folder is used as it is.

    Returns the local model folder (the one holding ``MLmodel``).
    """
    from labtrack.client.artifact_repo import ArtifactRepo

    text = os.fspath(uri)
    if text.startswith("file://") or not _SCHEME.match(text):
        local = Path(text[len("file://"):] if text.startswith("file://") else text)
        if local.is_dir():
            return local
        raise ResourceDoesNotExist(f"no model folder at {local}")
    artifact_uri = artifact_uri_of(client, text)
    target = Path(dst)
    target.mkdir(parents=True, exist_ok=True)
    ArtifactRepo(client.transport, artifact_uri).download("", target)
    if not (target / "MLmodel").is_file():
        raise ResourceDoesNotExist(f"{text} ({artifact_uri}) holds no MLmodel file")
    return target


def registration_source(client: Any, uri: str) -> tuple[str, str | None, str | None]:
    """(source, run_id, model_id) for ``register_model(uri, ...)``, as MLflow 3 chooses them."""
    ref = parse_model_uri(uri)
    if ref.kind == "run":
        run, listed = _run_artifacts(client, ref)
        if listed:
            # The run's folder, with no model_id, as mlflow.register_model sends it: MLflow
            # 3.17's server refuses a source that is not inside the model_id's own artifacts.
            return _join(run.info.artifact_uri, ref.path), run.info.run_id, None
        model = _logged_model_of_run(client, run, ref.path)
        if model is not None:
            return f"models:/{model.model_id}", run.info.run_id, model.model_id
        raise ResourceDoesNotExist(f"run {ref.run_id} has no model at {ref.path!r}")
    if ref.kind == "model_id":
        model = client.get_logged_model(ref.model_id)
        return uri, model.source_run_id, model.model_id
    if ref.kind == "uri":
        return uri, None, None
    version = client.get_model_version(ref.name, ref.resolve_version(client))
    return f"models:/{version.name}/{version.version}", version.run_id, version.model_id

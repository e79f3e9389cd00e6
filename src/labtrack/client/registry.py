"""Model-registry methods of ``lt.Client`` (reference §2.4), with ``MlflowClient``'s names.

``RegistryMixin`` is mixed into :class:`labtrack.client.client.Client`; it
only needs the client's ``_call``/``_read``.  ``register_model`` is the
fluent ``lt.register_model``.
"""

from __future__ import annotations

import time
from typing import Any

from labtrack.errors import LabtrackError, ResourceAlreadyExists
from labtrack.registry_entities import ModelVersion, RegisteredModel

# MLflow's client hides prompts (registered models with this tag) from model searches.
PROMPT_FILTER = "tag.`mlflow.prompt.is_prompt` != 'true'"
AWAIT_REGISTRATION_S = 300


def _tag_list(tags: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"key": str(k), "value": str(v)} for k, v in (tags or {}).items()]


def _without_none(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if v is not None}


class RegistryMixin:
    """Registered models, model versions, stages, aliases and tags."""

    _call: Any
    _read: Any

    # -- registered models -----------------------------------------------------------
    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None,
                                description: str | None = None) -> RegisteredModel:
        """Create a registered model; RESOURCE_ALREADY_EXISTS if the name is taken."""
        reply = self._call("POST", "registered-models/create", _without_none(
            {"name": name, "tags": _tag_list(tags), "description": description}))
        return RegisteredModel.from_json(reply["registered_model"])

    def get_registered_model(self, name: str) -> RegisteredModel:
        reply = self._read("GET", "registered-models/get", {"name": name})
        return RegisteredModel.from_json(reply["registered_model"])

    def search_registered_models(self, filter_string: str | None = None, max_results: int = 100,
                                 order_by: list[str] | None = None,
                                 page_token: str | None = None) -> Any:
        """One page of registered models (prompts excluded, as MLflow's client does)."""
        from labtrack.client.client import PagedList

        filter_string = f"{filter_string} AND {PROMPT_FILTER}" if filter_string else PROMPT_FILTER
        reply = self._read("GET", "registered-models/search", _without_none({
            "filter": filter_string, "max_results": max_results, "order_by": order_by or None,
            "page_token": page_token}))
        return PagedList((RegisteredModel.from_json(m) for m in reply.get("registered_models") or []),
                         reply.get("next_page_token"))

    def update_registered_model(self, name: str, description: str | None = None) -> RegisteredModel:
        reply = self._call("PATCH", "registered-models/update",
                           _without_none({"name": name, "description": description}))
        return RegisteredModel.from_json(reply["registered_model"])

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        reply = self._call("POST", "registered-models/rename", {"name": name, "new_name": new_name})
        return RegisteredModel.from_json(reply["registered_model"])

    def delete_registered_model(self, name: str) -> None:
        self._call("DELETE", "registered-models/delete", {"name": name})

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        """The newest version in each of ``stages`` (all stages when None)."""
        reply = self._read("POST", "registered-models/get-latest-versions",
                           _without_none({"name": name, "stages": stages or None}))
        return [ModelVersion.from_json(v) for v in reply.get("model_versions") or []]

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self._call("POST", "registered-models/set-tag", {"name": name, "key": key, "value": str(value)})

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._call("DELETE", "registered-models/delete-tag", {"name": name, "key": key})

    # -- aliases -----------------------------------------------------------------------
    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` (``models:/<name>@<alias>``) at a version."""
        self._call("POST", "registered-models/alias",
                   {"name": name, "alias": alias, "version": str(version)})

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", "registered-models/alias", {"name": name, "alias": alias})

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        reply = self._read("GET", "registered-models/alias", {"name": name, "alias": alias})
        return ModelVersion.from_json(reply["model_version"])

    # -- model versions ----------------------------------------------------------------
    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, run_link: str | None = None,
                             description: str | None = None,
                             await_creation_for: int = AWAIT_REGISTRATION_S,
                             model_id: str | None = None) -> ModelVersion:
        """Register ``source`` (an artifact URI of this server) as the next version of ``name``."""
        reply = self._call("POST", "model-versions/create", _without_none({
            "name": name, "source": source, "run_id": run_id, "tags": _tag_list(tags),
            "run_link": run_link, "description": description, "model_id": model_id}))
        version = ModelVersion.from_json(reply["model_version"])
        deadline = time.monotonic() + max(0, await_creation_for or 0)
        # labtrack creates versions READY; another server may register asynchronously.
        while version.status == "PENDING_REGISTRATION" and time.monotonic() < deadline:
            time.sleep(1)
            version = self.get_model_version(name, version.version)
        return version

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        reply = self._read("GET", "model-versions/get", {"name": name, "version": str(version)})
        return ModelVersion.from_json(reply["model_version"])

    def update_model_version(self, name: str, version: str | int,
                             description: str | None = None) -> ModelVersion:
        reply = self._call("PATCH", "model-versions/update", _without_none(
            {"name": name, "version": str(version), "description": description}))
        return ModelVersion.from_json(reply["model_version"])

    def transition_model_version_stage(self, name: str, version: str | int, stage: str,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        """Move a version to None/Staging/Production/Archived (optionally archiving the others)."""
        reply = self._call("POST", "model-versions/transition-stage", {
            "name": name, "version": str(version), "stage": stage,
            "archive_existing_versions": bool(archive_existing_versions)})
        return ModelVersion.from_json(reply["model_version"])

    def delete_model_version(self, name: str, version: str | int) -> None:
        self._call("DELETE", "model-versions/delete", {"name": name, "version": str(version)})

    def search_model_versions(self, filter_string: str | None = None, max_results: int = 10000,
                              order_by: list[str] | None = None,
                              page_token: str | None = None) -> Any:
        """One page of model versions matching an MLflow filter (e.g. ``name = 'm'``)."""
        from labtrack.client.client import PagedList

        reply = self._read("GET", "model-versions/search", _without_none({
            "filter": filter_string or None, "max_results": max_results,
            "order_by": order_by or None, "page_token": page_token}))
        return PagedList((ModelVersion.from_json(v) for v in reply.get("model_versions") or []),
                         reply.get("next_page_token"))

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        """Where the version's files are (a ``models:/<model_id>`` source is resolved)."""
        reply = self._read("GET", "model-versions/get-download-uri",
                           {"name": name, "version": str(version)})
        return str(reply["artifact_uri"])

    def _version_of(self, name: str, version: str | int | None, stage: str | None) -> str:
        if version is not None:
            return str(version)
        if stage is None:
            raise LabtrackError("give a version or a stage", "INVALID_PARAMETER_VALUE")
        latest = self.get_latest_versions(name, [stage])
        if not latest:
            raise LabtrackError(f"registered model {name!r} has no version in stage {stage!r}",
                                "RESOURCE_DOES_NOT_EXIST")
        return latest[0].version

    def set_model_version_tag(self, name: str, version: str | int | None = None,
                              key: str | None = None, value: Any = None,
                              stage: str | None = None) -> None:
        """Tag a version, named by number or (as MLflow allows) by its stage's latest version."""
        if key is None or value is None:
            raise LabtrackError("set_model_version_tag needs key and value",
                                "INVALID_PARAMETER_VALUE")
        self._call("POST", "model-versions/set-tag", {
            "name": name, "version": self._version_of(name, version, stage), "key": key,
            "value": str(value)})

    def delete_model_version_tag(self, name: str, version: str | int | None = None,
                                 key: str | None = None, stage: str | None = None) -> None:
        if key is None:
            raise LabtrackError("delete_model_version_tag needs key", "INVALID_PARAMETER_VALUE")
        self._call("DELETE", "model-versions/delete-tag", {
            "name": name, "version": self._version_of(name, version, stage), "key": key})

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> ModelVersion:
        """Register the version ``src_model_uri`` (``models:/<name>/<v>``...) under ``dst_name``."""
        from labtrack.client.model_uri import parse_model_uri

        ref = parse_model_uri(src_model_uri)
        if ref.kind not in ("version", "stage", "alias", "latest"):
            raise LabtrackError("copy_model_version needs a models:/<name>/<version>, "
                                "/<stage> or @<alias> URI", "INVALID_PARAMETER_VALUE")
        source = self.get_model_version(ref.name, ref.resolve_version(self))  # type: ignore[arg-type]
        try:
            self.create_registered_model(dst_name)
        except ResourceAlreadyExists:
            pass
        return self.create_model_version(dst_name, f"models:/{source.name}/{source.version}",
                                         run_id=source.run_id, model_id=source.model_id)


def register_model(model_uri: str, name: str, await_registration_for: int = AWAIT_REGISTRATION_S,
                   *, tags: dict[str, Any] | None = None, client: Any = None) -> ModelVersion:
    """Register the model at ``model_uri`` as a new version of ``name`` (created if new).

    ``model_uri`` is ``runs:/<run_id>/<path>``, ``models:/<model_id>``,
    ``models:/<name>/<version|stage>``, ``models:/<name>@<alias>`` or an
    artifact URI of the tracking server.
    """
    from labtrack.client.model_uri import registration_source

    if client is None:
        from labtrack.client import fluent

        client = fluent._client()
    try:
        client.create_registered_model(name)
    except ResourceAlreadyExists:
        pass  # registering a further version of an existing model
    source, run_id, model_id = registration_source(client, model_uri)
    version = client.create_model_version(name, source, run_id=run_id, tags=tags,
                                          await_creation_for=await_registration_for,
                                          model_id=model_id)
    if model_id:
        _tag_logged_model(client, model_id, name, version.version)
    return version


def _tag_logged_model(client: Any, model_id: str, name: str, version: str) -> None:
    """Record the registration on the logged model (``mlflow.modelVersions``), as MLflow does."""
    import json

    try:
        model = client.get_logged_model(model_id)
        versions = json.loads(model.tags.get("mlflow.modelVersions") or "[]")
        versions.append({"name": name, "version": version})
        client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps(versions)})
    except (LabtrackError, ValueError):
        pass  # a bookkeeping tag; the version itself is registered

"""MLflow 3 logged models from ``lt.Client`` (reference §2.6), with ``MlflowClient``'s names.

A logged model is a model's own record (id ``m-<hex>``, its own artifact
location) beside the run that produced it; ``log_model`` creates one so
that MLflow 3 tools find labtrack's models.
"""

from __future__ import annotations

from typing import Any

from labtrack.entities import LoggedModel

READY = "LOGGED_MODEL_READY"
UPLOAD_FAILED = "LOGGED_MODEL_UPLOAD_FAILED"


class LoggedModelsMixin:
    """Create, finalize, read, search and tag logged models; link them to runs."""

    _call: Any
    _read: Any

    def create_logged_model(self, experiment_id: str, name: str | None = None,
                            source_run_id: str | None = None,
                            tags: dict[str, Any] | None = None,
                            params: dict[str, Any] | None = None,
                            model_type: str | None = None) -> LoggedModel:
        """A new PENDING logged model; upload its files, then ``finalize_logged_model``."""
        message: dict[str, Any] = {"experiment_id": str(experiment_id)}
        for key, value in (("name", name), ("source_run_id", source_run_id),
                           ("model_type", model_type)):
            if value is not None:
                message[key] = value
        # The server takes at most 100 params per request; the rest follow in batches.
        items = [{"key": str(k), "value": str(v)} for k, v in (params or {}).items()]
        message["params"] = items[:100]
        message["tags"] = [{"key": str(k), "value": str(v)} for k, v in (tags or {}).items()]
        model = LoggedModel.from_json(self._call("POST", "logged-models", message)["model"])
        for start in range(100, len(items), 100):
            self._call("POST", f"logged-models/{model.model_id}/params",
                       {"model_id": model.model_id, "params": items[start:start + 100]})
        return model

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        reply = self._read("GET", f"logged-models/{model_id}",
                           {"allow_deleted": True} if allow_deleted else None)
        return LoggedModel.from_json(reply["model"])

    def finalize_logged_model(self, model_id: str, status: str = READY) -> LoggedModel:
        """Mark a logged model READY (or UPLOAD_FAILED) once its files are uploaded."""
        if not status.startswith("LOGGED_MODEL_"):
            status = "LOGGED_MODEL_" + status.upper()
        reply = self._call("PATCH", f"logged-models/{model_id}",
                           {"model_id": model_id, "status": status})
        return LoggedModel.from_json(reply["model"])

    def delete_logged_model(self, model_id: str) -> None:
        self._call("DELETE", f"logged-models/{model_id}")

    def set_logged_model_tags(self, model_id: str, tags: dict[str, Any]) -> None:
        self._call("PATCH", f"logged-models/{model_id}/tags",
                   {"tags": [{"key": str(k), "value": str(v)} for k, v in tags.items()]})

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        from urllib.parse import quote

        self._call("DELETE", f"logged-models/{model_id}/tags/{quote(key, safe='')}")

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None = None,
                             max_results: int | None = None, order_by: list[dict[str, Any]] | None = None,
                             page_token: str | None = None) -> Any:
        """One page of logged models (``filter_string`` e.g. ``"name = 'model'"``)."""
        from labtrack.client.client import PagedList

        message: dict[str, Any] = {"experiment_ids": [str(e) for e in experiment_ids]}
        for key, value in (("filter", filter_string), ("max_results", max_results),
                           ("order_by", order_by), ("page_token", page_token)):
            if value:
                message[key] = value
        reply = self._read("POST", "logged-models/search", message)
        return PagedList((LoggedModel.from_json(m) for m in reply.get("models") or []),
                         reply.get("next_page_token"))

    def log_outputs(self, run_id: str, model_ids: list[str], step: int = 0) -> None:
        """Record logged models as outputs of a run (``run.outputs.model_outputs``)."""
        self._call("POST", "runs/outputs", {
            "run_id": run_id, "models": [{"model_id": m, "step": step} for m in model_ids]})

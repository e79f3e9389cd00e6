"""``lt.Client``: the explicit client, with ``MlflowClient``'s method names.

Writes of metrics, params and tags go through the background sender unless
synchronous logging is asked for (``synchronous=True``, ``lt.set_async(False)``
or ``LABTRACK_ASYNC_LOGGING=false``).  Every read first waits for this
client's queued writes, so a process always reads what it wrote.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from labtrack import columns
from labtrack.client import config
from labtrack.client.logged_models import LoggedModelsMixin
from labtrack.client.registry import RegistryMixin
from labtrack.client.transport import LABTRACK_API
from labtrack.entities import Experiment, FileInfo, Metric, Param, Run, RunInfo, RunTag
from labtrack.errors import LabtrackError, ResourceDoesNotExist

METRIC = 0  # the sender's item kinds (labtrack.client.sender), kept here to stay import-light

PARAM_VALUE_LIMIT = 6000
HISTORY_PAGE = 100_000  # points per metrics/history-columns page: 2.4 MB packed, one round trip for most
TAG_VALUE_LIMIT = 8000
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


class ViewType:
    """Which lifecycle stages a search returns (MLflow's numbers, sent as names)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    @staticmethod
    def name(view: int | str | None) -> str:
        if view is None:
            return "ACTIVE_ONLY"
        if isinstance(view, str):
            return view.upper()
        return {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}[int(view)]


class PagedList(list):
    """A page of results; ``token`` fetches the next page (None when there is none)."""

    def __init__(self, items: Iterable[Any], token: str | None) -> None:
        super().__init__(items)
        self.token = token or None


def all_pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    """Every item of a paged client call: ``fetch(page_token)`` returns a ``PagedList``."""
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _now_ms() -> int:
    return int(time.time() * 1000)


def _truncate(value: Any, limit: int) -> str:
    text = str(value)
    if len(text) > limit and os.environ.get("MLFLOW_TRUNCATE_LONG_VALUES", "true").lower() != "false":
        return text[:limit]
    return text


def _pairs(items: Any, cls: type) -> list[tuple[str, str]]:
    if not items:
        return []
    if isinstance(items, dict):
        return [(str(k), v) for k, v in items.items()]
    return [(i.key, i.value) if isinstance(i, cls) else (i["key"], i["value"]) for i in items]


class Client(RegistryMixin, LoggedModelsMixin):
    """A client for one tracking server (resolved with zero setup when no URI is given)."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        if tracking_uri is None:
            # As MlflowClient() follows mlflow.set_tracking_uri: the URI set for the fluent
            # API wins over the environment and over finding a database.
            from labtrack.client import fluent

            tracking_uri = fluent._state.uri
        self._uri = tracking_uri
        self._transport: Any = None
        self._sender: Any = None
        self._artifact_uris: dict[str, str] = {}
        self._lock = threading.Lock()
        self._history_columns = True  # until the server turns out to have no metrics/history-columns

    # -- plumbing ---------------------------------------------------------------------
    @property
    def transport(self) -> Any:
        """The connection to the server; resolving it may start a background server."""
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    from labtrack.client.discovery import transport_for

                    self._transport = transport_for(self._uri)
        return self._transport

    @property
    def tracking_uri(self) -> str:
        """The server's URI (``http://...`` or ``http+unix://...``)."""
        return self.transport.uri

    @property
    def sender(self) -> Any:
        if self._sender is None:
            transport = self.transport  # first: resolving it takes the same (non-reentrant) lock
            with self._lock:
                if self._sender is None:
                    from labtrack.client.sender import Sender

                    self._sender = Sender(transport)
                    config.register_sender(self._sender)
        return self._sender

    def _call(self, method: str, endpoint: str, message: dict[str, Any] | None = None,
              **kw: Any) -> dict[str, Any]:
        return self.transport.call(method, endpoint, message, **kw)

    def _read(self, method: str, endpoint: str, message: dict[str, Any] | None = None,
              **kw: Any) -> dict[str, Any]:
        # Read your own writes; a rejected write is still raised by flush()/end_run only.
        if self._sender is not None:
            self._sender.wait()
        return self._call(method, endpoint, message, **kw)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until queued writes are delivered; raise the first one the server rejected."""
        if self._sender is not None:
            self._sender.flush(timeout)

    def _async(self, synchronous: bool | None) -> bool:
        return not synchronous if synchronous is not None else config.async_logging()

    # -- experiments ------------------------------------------------------------------
    def get_experiment(self, experiment_id: str) -> Experiment:
        reply = self._call("GET", "experiments/get", {"experiment_id": str(experiment_id)})
        return Experiment.from_json(reply["experiment"])

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            reply = self._call("GET", "experiments/get-by-name", {"experiment_name": name})
        except ResourceDoesNotExist:
            return None
        return Experiment.from_json(reply["experiment"])

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, Any] | None = None) -> str:
        message: dict[str, Any] = {"name": name, "tags": [
            {"key": k, "value": str(v)} for k, v in (tags or {}).items()]}
        if artifact_location:
            message["artifact_location"] = artifact_location
        return str(self._call("POST", "experiments/create", message)["experiment_id"])

    def search_experiments(self, view_type: int | str = ViewType.ACTIVE_ONLY,
                           max_results: int | None = 1000, filter_string: str | None = None,
                           order_by: list[str] | None = None,
                           page_token: str | None = None) -> PagedList:
        message = {"view_type": ViewType.name(view_type), "max_results": max_results,
                   "filter": filter_string or None, "order_by": order_by or None,
                   "page_token": page_token}
        reply = self._call("POST", "experiments/search",
                           {k: v for k, v in message.items() if v is not None})
        return PagedList((Experiment.from_json(e) for e in reply.get("experiments") or []),
                         reply.get("next_page_token"))

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._call("POST", "experiments/update",
                   {"experiment_id": str(experiment_id), "new_name": new_name})

    def delete_experiment(self, experiment_id: str) -> None:
        self._call("POST", "experiments/delete", {"experiment_id": str(experiment_id)})

    def restore_experiment(self, experiment_id: str) -> None:
        self._call("POST", "experiments/restore", {"experiment_id": str(experiment_id)})

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self._call("POST", "experiments/set-experiment-tag",
                   {"experiment_id": str(experiment_id), "key": key, "value": str(value)})

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._call("POST", "experiments/delete-experiment-tag",
                   {"experiment_id": str(experiment_id), "key": key})

    # -- runs -------------------------------------------------------------------------
    def create_run(self, experiment_id: str, start_time: int | None = None,
                   tags: dict[str, Any] | None = None, run_name: str | None = None) -> Run:
        """Create a run (RUNNING).  System tags are added by the fluent ``start_run``."""
        from labtrack.client.system_tags import user_name

        all_tags = {k: _truncate(v, TAG_VALUE_LIMIT) for k, v in (tags or {}).items()}
        message: dict[str, Any] = {
            "experiment_id": str(experiment_id), "user_id": all_tags.get("mlflow.user") or user_name(),
            "start_time": start_time or _now_ms(),
            "tags": [{"key": k, "value": v} for k, v in all_tags.items()]}
        if run_name:
            message["run_name"] = run_name
        run = Run.from_json(self._call("POST", "runs/create", message)["run"])
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        return run

    def get_run(self, run_id: str) -> Run:
        reply = self._read("GET", "runs/get", {"run_id": run_id, "run_uuid": run_id})
        run = Run.from_json(reply["run"])
        self._artifact_uris[run_id] = run.info.artifact_uri
        return run

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None,
                   end_time: int | None = None) -> RunInfo:
        """Change a run's status and/or name."""
        message: dict[str, Any] = {"run_id": run_id, "run_uuid": run_id}
        if status is not None:
            if status not in RUN_STATUSES:
                raise LabtrackError(f"unknown run status {status!r}", "INVALID_PARAMETER_VALUE")
            message["status"] = status
        if name is not None:
            message["run_name"] = name
        if end_time is not None:
            message["end_time"] = end_time
        reply = self._read("POST", "runs/update", message)
        return RunInfo.from_json(reply.get("run_info") or {"run_id": run_id})

    def set_terminated(self, run_id: str, status: str | None = None,
                       end_time: int | None = None) -> None:
        """End a run: wait for its queued writes, then set its status (FINISHED) and end time."""
        self.update_run(run_id, status or "FINISHED", end_time=end_time or _now_ms())

    def delete_run(self, run_id: str) -> None:
        self._read("POST", "runs/delete", {"run_id": run_id})

    def restore_run(self, run_id: str) -> None:
        self._read("POST", "runs/restore", {"run_id": run_id})

    def search_runs(self, experiment_ids: str | Sequence[str], filter_string: str = "",
                    run_view_type: int | str = ViewType.ACTIVE_ONLY, max_results: int = 1000,
                    order_by: list[str] | None = None, page_token: str | None = None) -> PagedList:
        """One page of runs matching an MLflow filter string."""
        if isinstance(experiment_ids, (str, int)):
            experiment_ids = [experiment_ids]
        message: dict[str, Any] = {
            "experiment_ids": [str(e) for e in experiment_ids], "filter": filter_string or "",
            "run_view_type": ViewType.name(run_view_type), "max_results": max_results}
        if order_by:
            message["order_by"] = list(order_by)
        if page_token:
            message["page_token"] = page_token
        reply = self._read("POST", "runs/search", message)
        return PagedList((Run.from_json(r) for r in reply.get("runs") or []),
                         reply.get("next_page_token"))

    # -- metrics, params, tags ----------------------------------------------------------
    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None,
                   step: int | None = None, synchronous: bool | None = None) -> None:
        """Log one metric point (queued unless synchronous)."""
        value = float(value)
        # time_ns() // 10**6: the same milliseconds as int(time.time() * 1000), in less time.
        ts = int(timestamp) if timestamp is not None else time.time_ns() // 1_000_000
        step = int(step) if step else 0
        if synchronous is None and config.ASYNC[0] or synchronous is False:
            # The hot path of a training loop: one tuple appended to the queue.
            (self._sender or self.sender).put((METRIC, run_id, key, value, ts, step))
            return
        self._call("POST", "runs/log-metric", {
            "run_id": run_id, "run_uuid": run_id, "key": key,
            "value": Metric(key, value, ts).to_json()["value"], "timestamp": ts, "step": step})

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        """Log a parameter (a string; logging another value for the key is an error)."""
        text = _truncate(value, PARAM_VALUE_LIMIT)
        if self._async(synchronous):
            self.sender.put_param(run_id, key, text)
        else:
            self._call("POST", "runs/log-parameter",
                       {"run_id": run_id, "run_uuid": run_id, "key": key, "value": text})
        return value

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        text = _truncate(value, TAG_VALUE_LIMIT)
        if self._async(synchronous):
            self.sender.put_tag(run_id, key, text)
        else:
            self._call("POST", "runs/set-tag",
                       {"run_id": run_id, "run_uuid": run_id, "key": key, "value": text})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._read("POST", "runs/delete-tag", {"run_id": run_id, "key": key})

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (),
                  params: Sequence[Param] | dict[str, Any] = (),
                  tags: Sequence[RunTag] | dict[str, Any] = (),
                  synchronous: bool | None = None) -> None:
        """Log many metrics, params and tags; split to fit the server's batch limits."""
        params_ = [(k, _truncate(v, PARAM_VALUE_LIMIT)) for k, v in _pairs(params, Param)]
        tags_ = [(k, _truncate(v, TAG_VALUE_LIMIT)) for k, v in _pairs(tags, RunTag)]
        points = [(m.key, float(m.value), int(m.timestamp), int(m.step or 0)) for m in metrics]
        if self._async(synchronous):
            sender = self.sender
            for k, v in params_:
                sender.put_param(run_id, k, v)
            for k, v in tags_:
                sender.put_tag(run_id, k, v)
            for k, v, ts, step in points:
                sender.put((METRIC, run_id, k, v, ts, step))
            return
        from labtrack.client.sender import PARAM, TAG, _Batch

        items = ([(PARAM, run_id, k, v) for k, v in params_]
                 + [(TAG, run_id, k, v) for k, v in tags_]
                 + [(METRIC, run_id, *p) for p in points])
        batch = _Batch(run_id)
        for item in items:
            if not batch.add(item):
                self._call("POST", "runs/log-batch", batch.message())
                batch = _Batch(run_id)
                batch.add(item)
        if len(batch) or not items:
            self._call("POST", "runs/log-batch", batch.message())

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every logged point of one metric (all pages), in the server's order."""
        if self._sender is not None:
            self._sender.wait()
        if self._history_columns:
            try:
                return self._history_by_columns(run_id, key)
            except LabtrackError as exc:
                if exc.error_code != "ENDPOINT_NOT_FOUND":
                    raise
                self._history_columns = False  # an MLflow server: its own get-history from now on
        out: list[Metric] = []
        token: str | None = None
        while True:
            reply = self._call("GET", "metrics/get-history", {
                "run_id": run_id, "run_uuid": run_id, "metric_key": key,
                "max_results": 25000, "page_token": token})
            out += [Metric.from_json(m) for m in reply.get("metrics") or []]
            token = reply.get("next_page_token")
            if not token:
                return out

    def _history_by_columns(self, run_id: str, key: str) -> list[Metric]:
        """labtrack's ``metrics/history-columns``: the same points, packed (C decodes them)."""
        out: list[Metric] = []
        token: str | None = None
        while True:
            reply = self._call("GET", "metrics/history-columns", {
                "run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE, "page_token": token},
                api=LABTRACK_API)
            steps = columns.unpack(columns.STEP, reply.get("steps") or "")
            timestamps = columns.unpack(columns.STEP, reply.get("timestamps") or "")
            values = columns.unpack(columns.VALUE, reply.get("values") or "")
            if len(steps) != len(values) or len(timestamps) != len(values):
                raise LabtrackError("the server's history columns differ in length")
            linked = [reply.get(name) or [None] * len(values)
                      for name in ("model_ids", "dataset_names", "dataset_digests")]
            if any(reply.get(name) for name in ("model_ids", "dataset_names", "dataset_digests")):
                out += [Metric(key, v, t, s, None, m, dn, dd)
                        for s, t, v, m, dn, dd in zip(steps, timestamps, values, *linked)]
            else:
                out += [Metric(key, v, t, s) for s, t, v in zip(steps, timestamps, values)]
            token = reply.get("next_page_token")
            if not token:
                return out

    # -- artifacts --------------------------------------------------------------------
    def _repo(self, run_id: str) -> Any:
        from labtrack.client.artifact_repo import ArtifactRepo

        uri = self._artifact_uris.get(run_id)
        if uri is None:
            uri = self.get_run(run_id).info.artifact_uri
        return ArtifactRepo(self.transport, uri)

    def get_artifact_uri(self, run_id: str, artifact_path: str | None = None) -> str:
        uri = self._artifact_uris.get(run_id) or self.get_run(run_id).info.artifact_uri
        return uri.rstrip("/") + "/" + artifact_path.lstrip("/") if artifact_path else uri

    def log_artifact(self, run_id: str, local_path: str | os.PathLike,
                     artifact_path: str | None = None) -> None:
        """Upload a file into the run's artifacts (under ``artifact_path``)."""
        self._repo(run_id).log_file(local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike,
                      artifact_path: str | None = None) -> None:
        """Upload a folder's contents into the run's artifacts."""
        self._repo(run_id).log_dir(local_dir, artifact_path)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        return self._repo(run_id).list(path)

    def download_artifacts(self, run_id: str, path: str = "",
                           dst_path: str | os.PathLike | None = None) -> str:
        """Download a file or folder of the run's artifacts; return its local path."""
        dst = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="labtrack-"))
        dst.mkdir(parents=True, exist_ok=True)
        return self._repo(run_id).download(path, dst)

    def _log_object(self, run_id: str, artifact_file: str, write: Any) -> None:
        name = Path(artifact_file)
        folder = name.parent.as_posix()
        with tempfile.TemporaryDirectory(prefix="labtrack-") as tmp:
            target = Path(tmp) / name.name
            write(target)
            self.log_artifact(run_id, target, None if folder in ("", ".") else folder)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Save ``text`` as the artifact ``artifact_file`` (e.g. ``"notes/a.txt"``)."""
        from labtrack.client.artifact_files import write_text

        self._log_object(run_id, artifact_file, lambda p: write_text(text, p))

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        """Save a dict as JSON (or YAML for ``.yaml``/``.yml``)."""
        from labtrack.client.artifact_files import write_dict

        self._log_object(run_id, artifact_file, lambda p: write_dict(dictionary, p))

    def log_figure(self, run_id: str, figure: Any, artifact_file: str, *,
                   save_kwargs: dict[str, Any] | None = None) -> None:
        """Save a matplotlib (or plotly) figure as an artifact."""
        from labtrack.client.artifact_files import write_figure

        self._log_object(run_id, artifact_file, lambda p: write_figure(figure, p, save_kwargs))

    def log_image(self, run_id: str, image: Any, artifact_file: str) -> None:
        """Save a PIL image or a numpy array as an image artifact."""
        from labtrack.client.artifact_files import write_image

        self._log_object(run_id, artifact_file, lambda p: write_image(image, p))

    def __repr__(self) -> str:
        where = self._transport.uri if self._transport is not None else (self._uri or "<auto>")
        return f"Client({where!r})"

"""The fluent API (``lt.start_run``, ``lt.log_metric``...), with MLflow's names and semantics.

State is per process (tracking URI, experiment, the client) and per thread
(the stack of active runs), as in MLflow.  A run left open at interpreter
exit is ended: FINISHED, or FAILED/KILLED when an uncaught exception or
Ctrl-C ends the program; queued writes are delivered first.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import fields
from typing import Any

from labtrack.client import config
from labtrack.client.client import Client, ViewType
from labtrack.entities import Experiment, FileInfo, Metric, Run, RunList
from labtrack.errors import LabtrackError, ResourceAlreadyExists

NUM_RUNS_PER_PAGE = 10000


class _State:
    uri: str | None = None
    client: Client | None = None
    experiment_id: str | None = None
    last_run_id: str | None = None
    exit_status: str | None = None
    hooks_installed = False


_state = _State()
_local = threading.local()
_hook_lock = threading.Lock()


class ActiveRun(Run):
    """The run ``start_run`` returns; a context manager that ends it."""

    def __init__(self, run: Run) -> None:
        Run.__init__(self, **{f.name: getattr(run, f.name) for f in fields(Run)})

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        stack = _stack()
        if not any(r.info.run_id == self.info.run_id for r in stack):
            return False
        try:
            while stack:
                top = stack[-1].info.run_id
                end_run(status)
                if top == self.info.run_id:
                    break
        except LabtrackError as err:
            if exc_type is None:
                raise
            # Don't hide the user's exception behind ours.
            print(f"labtrack: while ending run {self.info.run_id}: {err}", file=sys.stderr)
        return False


def _stack() -> list[ActiveRun]:
    try:
        return _local.stack
    except AttributeError:
        _local.stack = []
        return _local.stack


# -- tracking target -------------------------------------------------------------------
def set_tracking_uri(uri: str | os.PathLike) -> None:
    """Log to this server (``http(s)://``, ``http+unix://<socket>``, ``sqlite:///<db>``)."""
    _state.uri = os.fspath(uri) if uri else None
    _state.client = None


def get_tracking_uri() -> str:
    """The tracking URI in use; with zero setup, the URI of the server that was found/started."""
    explicit = _state.uri
    from labtrack.client.discovery import env_tracking_uri

    given = explicit or env_tracking_uri()
    if given and given.startswith(("http://", "https://", "http+unix://")):
        return given
    return _client().tracking_uri


def _client() -> Client:
    client = _state.client
    if client is None:
        client = _state.client = Client(_state.uri)
    return client


def set_async(enabled: bool) -> None:
    """Non-blocking logging on (the default) or off (``LABTRACK_ASYNC_LOGGING=false``)."""
    config.set_async(enabled)


def flush(timeout: float | None = None) -> None:
    """Wait until every queued write is delivered; raise the first write the server rejected."""
    first: LabtrackError | None = None
    for sender in config.senders():
        try:
            sender.flush(timeout)
        except LabtrackError as err:
            first = first or err
    if first is not None:
        raise first


flush_async_logging = flush


# -- experiments -----------------------------------------------------------------------
def set_experiment(experiment_name: str | None = None,
                   experiment_id: str | None = None) -> Experiment:
    """Make an experiment active (created if the name is new) and return it."""
    client = _client()
    if experiment_name is not None:
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            try:
                new_id = client.create_experiment(experiment_name)
            except ResourceAlreadyExists:  # another process won the race
                new_id = client.get_experiment_by_name(experiment_name).experiment_id  # type: ignore[union-attr]
            experiment = client.get_experiment(new_id)
    elif experiment_id is not None:
        experiment = client.get_experiment(str(experiment_id))
    else:
        raise LabtrackError("set_experiment needs experiment_name or experiment_id",
                            "INVALID_PARAMETER_VALUE")
    if experiment.lifecycle_stage != "active":
        raise LabtrackError(f"experiment {experiment.name!r} is deleted; restore it first",
                            "INVALID_PARAMETER_VALUE")
    _state.experiment_id = experiment.experiment_id
    return experiment


def _experiment_id() -> str:
    if _state.experiment_id is not None:
        return _state.experiment_id
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("LABTRACK_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name:
        return set_experiment(name).experiment_id
    return "0"


def get_experiment(experiment_id: str) -> Experiment:
    return _client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    """The experiment with this name, or None."""
    return _client().get_experiment_by_name(name)


def create_experiment(name: str, artifact_location: str | None = None,
                      tags: dict[str, Any] | None = None) -> str:
    return _client().create_experiment(name, artifact_location, tags)


def delete_experiment(experiment_id: str) -> None:
    _client().delete_experiment(experiment_id)


def set_experiment_tag(key: str, value: Any) -> None:
    _client().set_experiment_tag(_experiment_id(), key, value)


def search_experiments(view_type: int | str = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                       filter_string: str | None = None,
                       order_by: list[str] | None = None) -> list[Experiment]:
    """All experiments matching the filter (every page)."""
    client = _client()
    out: list[Experiment] = []
    token = None
    while True:
        page = client.search_experiments(view_type, 1000, filter_string, order_by, token)
        out += page
        token = page.token
        if not token or (max_results is not None and len(out) >= max_results):
            return out[:max_results] if max_results is not None else out


# -- runs ------------------------------------------------------------------------------
def start_run(run_id: str | None = None, experiment_id: str | None = None,
              run_name: str | None = None, nested: bool = False,
              parent_run_id: str | None = None, tags: dict[str, Any] | None = None,
              description: str | None = None, log_system_metrics: bool | None = None) -> ActiveRun:
    """Start (or resume, with ``run_id``) a run and make it active; use it as a context manager."""
    from labtrack.client import system_tags as st

    stack = _stack()
    if stack and not nested:
        raise LabtrackError(
            f"Run with UUID {stack[-1].info.run_id} is already active. To start a new run, "
            "first end the current run with lt.end_run(). To start a nested run, call "
            "start_run with nested=True", "INVALID_STATE")
    if parent_run_id and stack and stack[-1].info.run_id != parent_run_id:
        raise LabtrackError(f"the active run is not the parent {parent_run_id}",
                            "INVALID_PARAMETER_VALUE")
    client = _client()
    if not run_id and not stack:
        # As MLflow: a launcher (``labtrack run``, ``mlflow run``, a SLURM task) names the
        # run this process continues.
        run_id = os.environ.get("LABTRACK_RUN_ID") or os.environ.get("MLFLOW_RUN_ID") or None
    if run_id:
        run = _resume(client, run_id, tags)
    else:
        all_tags: dict[str, Any] = st.run_start_tags()
        all_tags.update(tags or {})
        parent = parent_run_id or (stack[-1].info.run_id if nested and stack else None)
        if parent:
            all_tags[st.PARENT_RUN_ID] = parent
        if run_name:
            all_tags[st.RUN_NAME] = run_name
        if description:
            all_tags[st.NOTE] = description
        run = client.create_run(experiment_id or _experiment_id(), tags=all_tags,
                                run_name=run_name or all_tags.get(st.RUN_NAME))
    active = ActiveRun(run)
    stack.append(active)
    _state.last_run_id = run.info.run_id
    _install_exit_hooks()
    from labtrack.client import system_metrics

    if system_metrics.enabled(log_system_metrics):
        system_metrics.start_for_run(run.info.run_id, client)
    return active


def _resume(client: Client, run_id: str, tags: dict[str, Any] | None) -> Run:
    """Mark ``run_id`` RUNNING again and return it.

    A process that spools (a batch task whose server is out of reach) cannot read
    the run back: it continues it from what it knows, and the server checks the
    run when the spool is ingested.
    """
    from labtrack.client.slurm_tags import slurm_tags
    from labtrack.entities import RunInfo
    from labtrack.errors import SpoolReadError

    # A batch task continuing its launcher's run records where it ran.
    tags = {**slurm_tags(), **(tags or {})}
    try:
        run = client.get_run(run_id)
    except SpoolReadError:
        client.update_run(run_id, "RUNNING")
        if tags:
            client.log_batch(run_id, tags=tags, synchronous=True)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_ID") or _state.experiment_id or "0"
        return Run(RunInfo(run_id, experiment, status="RUNNING"), tags=dict(tags or {}))
    if run.info.lifecycle_stage != "active":
        raise LabtrackError(f"cannot resume deleted run {run_id}", "INVALID_PARAMETER_VALUE")
    client.update_run(run_id, "RUNNING")
    if tags:
        client.log_batch(run_id, tags=tags, synchronous=True)
    return client.get_run(run_id)


def end_run(status: str = "FINISHED") -> None:
    """End the active run: deliver its queued writes, then set its status and end time.

    A write the server rejected is raised here, after the run has been ended.
    """
    stack = _stack()
    if not stack:
        return
    run = stack.pop()
    client = _client()
    from labtrack.client import system_metrics

    system_metrics.stop_for_run(run.info.run_id)  # its last point is queued before the flush
    pending: LabtrackError | None = None
    try:
        flush()
    except LabtrackError as err:
        pending = err
    client.set_terminated(run.info.run_id, status)
    _state.last_run_id = run.info.run_id
    if pending is not None:
        raise pending


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread, or None."""
    stack = _stack()
    return stack[-1] if stack else None


def last_active_run() -> Run | None:
    """The active run, else the run that ended last (fetched fresh), else None."""
    run_id = _stack()[-1].info.run_id if _stack() else _state.last_run_id
    return _client().get_run(run_id) if run_id else None


def _run_id() -> str:
    stack = _stack()
    if stack:
        return stack[-1].info.run_id
    return start_run().info.run_id  # as MLflow: logging without a run starts one


def get_run(run_id: str) -> Run:
    return _client().get_run(run_id)


def delete_run(run_id: str) -> None:
    _client().delete_run(run_id)


# -- logging ---------------------------------------------------------------------------
def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Log a parameter of the active run; returns ``value``."""
    return _client().log_param(_run_id(), key, value, synchronous)


def log_params(params: dict[str, Any], synchronous: bool | None = None,
               run_id: str | None = None) -> None:
    _client().log_batch(run_id or _run_id(), params=params, synchronous=synchronous)


def log_metric(key: str, value: float, step: int | None = None,
               synchronous: bool | None = None, timestamp: int | None = None,
               run_id: str | None = None) -> None:
    """Log one metric point; returns at once in the (default) asynchronous mode."""
    if not run_id:
        # A training loop's hot path: the thread's run stack read directly (_stack() on a miss).
        stack = getattr(_local, "stack", None) or _stack()
        run_id = stack[-1].info.run_id if stack else _run_id()
    (_state.client or _client()).log_metric(run_id, key, value, timestamp, step, synchronous)


def log_metrics(metrics: dict[str, float], step: int | None = None,
                synchronous: bool | None = None, run_id: str | None = None,
                timestamp: int | None = None) -> None:
    """Log several metrics at one step (one log-batch call in synchronous mode)."""
    import time

    ts = int(timestamp) if timestamp is not None else int(time.time() * 1000)
    points = [Metric(key, float(value), ts, int(step or 0)) for key, value in metrics.items()]
    _client().log_batch(run_id or _run_id(), metrics=points, synchronous=synchronous)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    _client().set_tag(_run_id(), key, value, synchronous)


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    _client().log_batch(_run_id(), tags=tags, synchronous=synchronous)


def delete_tag(key: str) -> None:
    _client().delete_tag(_run_id(), key)


def log_artifact(local_path: str | os.PathLike, artifact_path: str | None = None,
                 run_id: str | None = None) -> None:
    """Upload a file into the active run's artifacts."""
    _client().log_artifact(run_id or _run_id(), local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike, artifact_path: str | None = None,
                  run_id: str | None = None) -> None:
    """Upload a folder's contents into the active run's artifacts."""
    _client().log_artifacts(run_id or _run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    _client().log_text(run_id or _run_id(), text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: str | None = None) -> None:
    _client().log_dict(run_id or _run_id(), dictionary, artifact_file)


def log_figure(figure: Any, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None,
               run_id: str | None = None) -> None:
    _client().log_figure(run_id or _run_id(), figure, artifact_file, save_kwargs=save_kwargs)


def log_image(image: Any, artifact_file: str | None = None, key: str | None = None,
              step: int | None = None, timestamp: int | None = None,
              run_id: str | None = None) -> None:
    """Save a PIL image or numpy array as ``artifact_file`` (e.g. ``"plots/x.png"``), or, with
    ``key`` (and ``step``), as one image of a per-step series in MLflow 3's layout."""
    if artifact_file is not None and any(a is not None for a in (key, step, timestamp)):
        raise LabtrackError("log_image takes artifact_file alone, or key with step/timestamp",
                            "INVALID_PARAMETER_VALUE")
    if artifact_file is None and key is None:
        raise LabtrackError("log_image needs artifact_file or key", "INVALID_PARAMETER_VALUE")
    if key is not None:
        from labtrack.client.images import log_image_step

        log_image_step(_client(), run_id or _run_id(), image, key, step, timestamp)
        return
    _client().log_image(run_id or _run_id(), image, artifact_file)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    return _client().get_artifact_uri(_run_id(), artifact_path)


def download_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                       artifact_path: str | None = None,
                       dst_path: str | os.PathLike | None = None) -> str:
    """Download run artifacts (``runs:/<run_id>/<path>`` or run_id + artifact_path)."""
    if artifact_uri:
        if not artifact_uri.startswith("runs:/"):
            raise LabtrackError("download_artifacts supports runs:/<run_id>/<path> URIs",
                                "INVALID_PARAMETER_VALUE")
        run_id, _, artifact_path = artifact_uri[len("runs:/"):].lstrip("/").partition("/")
    if not run_id:
        raise LabtrackError("download_artifacts needs run_id or artifact_uri",
                            "INVALID_PARAMETER_VALUE")
    return _client().download_artifacts(run_id, artifact_path or "", dst_path)


def list_artifacts(run_id: str, path: str | None = None) -> list[FileInfo]:
    return _client().list_artifacts(run_id, path)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    """Every point of one metric of a run, in step/timestamp order as the server returns it."""
    return _client().get_metric_history(run_id, key)


def get_metric_histories(run_ids: list[str] | str, keys: list[str] | str) -> Any:
    """Full histories of several runs and metrics as one long pandas DataFrame.

    Columns ``run_id``, ``key``, ``step``, ``timestamp`` (UTC datetime) and ``value``, one
    row per point, ordered by run, key and step: ready for ``pivot``, ``groupby`` or a
    CSV. A run without a metric adds no rows for it.
    """
    from labtrack.client.run_table import histories_to_frame

    client = _client()
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    names = [keys] if isinstance(keys, str) else list(keys)
    return histories_to_frame({(r, k): client.get_metric_history(r, k) for r in ids for k in names})


def search_runs(experiment_ids: list[str] | None = None, filter_string: str = "",
                run_view_type: int | str = ViewType.ACTIVE_ONLY, max_results: int = 100000,
                order_by: list[str] | None = None, output_format: str = "list",
                search_all_experiments: bool = False,
                experiment_names: list[str] | None = None) -> Any:
    """Runs matching an MLflow filter: a list, or a pandas DataFrame (``output_format="pandas"``)."""
    if output_format not in ("list", "pandas"):
        raise LabtrackError("output_format must be 'list' or 'pandas'", "INVALID_PARAMETER_VALUE")
    client = _client()
    ids = [str(e) for e in experiment_ids or []]
    for name in experiment_names or []:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            ids.append(experiment.experiment_id)
    if not ids and not experiment_names:
        if search_all_experiments:
            ids = [e.experiment_id for e in search_experiments(view_type=ViewType.ALL)]
        else:
            ids = [_experiment_id()]
    runs: list[Run] = []
    token = None
    while ids and len(runs) < max_results:
        page = client.search_runs(ids, filter_string, run_view_type,
                                  min(NUM_RUNS_PER_PAGE, max_results - len(runs)),
                                  order_by, token)
        runs += page
        token = page.token
        if not token:
            break
    if output_format == "pandas":
        from labtrack.client.run_table import runs_to_frame

        return runs_to_frame(runs)
    return RunList(runs)  # a list that displays as a table in a notebook


# -- interpreter exit --------------------------------------------------------------------
def _install_exit_hooks() -> None:
    if _state.hooks_installed:
        return
    with _hook_lock:
        if _state.hooks_installed:
            return
        import atexit

        previous = sys.excepthook

        def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
            _state.exit_status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
            previous(exc_type, exc, tb)

        sys.excepthook = excepthook
        atexit.register(_at_exit)
        _state.hooks_installed = True


def _at_exit() -> None:
    status = _state.exit_status or "FINISHED"
    try:
        while _stack():
            end_run(status)
    except Exception as err:  # never turn a clean exit into a traceback storm
        print(f"labtrack: while ending runs at exit: {err}", file=sys.stderr)
    try:
        flush()
    except Exception as err:
        print(f"labtrack: writes not delivered at exit: {err}", file=sys.stderr)

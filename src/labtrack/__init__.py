"""labtrack: experiment tracking for JupyterLab on HPC clusters and offline machines.

``import labtrack as lt`` gives MLflow's fluent API (``lt.start_run``,
``lt.log_metric``...) and ``lt.Client``; it speaks MLflow's REST API, so it
logs to a labtrack server or to a real MLflow server.  Heavy libraries are
imported only when a feature needs them.
"""

from labtrack._version import __version__
from labtrack.autolog import autolog
from labtrack.client.client import Client, PagedList, ViewType
from labtrack.client.fluent import (
    ActiveRun,
    active_run,
    create_experiment,
    delete_experiment,
    delete_run,
    delete_tag,
    download_artifacts,
    end_run,
    flush,
    flush_async_logging,
    get_artifact_uri,
    get_experiment,
    get_experiment_by_name,
    get_metric_histories,
    get_metric_history,
    get_run,
    get_tracking_uri,
    last_active_run,
    list_artifacts,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_image,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    search_experiments,
    search_runs,
    set_async,
    set_experiment,
    set_experiment_tag,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)
from labtrack.client.datasets import log_input
from labtrack.client.mlflow_env import mlflow_env
from labtrack.client.prompts import load_prompt, register_prompt, search_prompts, set_prompt_alias
from labtrack.client.registry import register_model
from labtrack.client.system_metrics import (
    disable_system_metrics_logging,
    enable_system_metrics_logging,
    set_system_metrics_node_id,
    set_system_metrics_samples_before_logging,
    set_system_metrics_sampling_interval,
)
from labtrack.client.tables import load_table, log_table
from labtrack.client.traces import (
    get_current_active_span,
    get_last_active_trace_id,
    get_trace,
    log_feedback,
    search_traces,
    start_span,
    trace,
    update_current_trace,
)
from labtrack.entities import Experiment, FileInfo, LoggedModel, Metric, Param, Run, RunInfo, RunTag
from labtrack.errors import LabtrackError
from labtrack.registry_entities import ModelVersion, RegisteredModel

__all__ = [
    "ActiveRun",
    "Client",
    "Experiment",
    "FileInfo",
    "LabtrackError",
    "LoggedModel",
    "Metric",
    "ModelVersion",
    "PagedList",
    "Param",
    "RegisteredModel",
    "Run",
    "RunInfo",
    "RunTag",
    "ViewType",
    "__version__",
    "active_run",
    "autolog",
    "create_experiment",
    "data",
    "delete_experiment",
    "delete_run",
    "delete_tag",
    "disable_system_metrics_logging",
    "download_artifacts",
    "enable_system_metrics_logging",
    "end_run",
    "evaluate",
    "flush",
    "flush_async_logging",
    "get_artifact_uri",
    "get_current_active_span",
    "get_experiment",
    "get_experiment_by_name",
    "get_last_active_trace_id",
    "get_metric_histories",
    "get_metric_history",
    "get_run",
    "get_trace",
    "get_tracking_uri",
    "last_active_run",
    "list_artifacts",
    "load_prompt",
    "load_table",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_feedback",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "mlflow_env",
    "register_model",
    "register_prompt",
    "search_experiments",
    "search_prompts",
    "search_runs",
    "search_traces",
    "set_async",
    "set_experiment",
    "set_experiment_tag",
    "set_prompt_alias",
    "set_system_metrics_node_id",
    "set_system_metrics_samples_before_logging",
    "set_system_metrics_sampling_interval",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "start_span",
    "trace",
    "update_current_trace",
    "widgets",
]

# Model flavors (``lt.sklearn``, ``lt.pyfunc``, ``lt.pytorch``) load on first use: they bring
# numpy, pandas and the framework, which ``import labtrack`` must not pay for.
_FLAVORS = frozenset({"pyfunc", "pytorch", "sklearn"})
# Autolog-only namespaces (``lt.xgboost.autolog()``...) and ``lt.data``/``lt.evaluate``: light
# modules, loaded on first use all the same.
_LAZY = {"data": "labtrack.client.datasets", "lightgbm": "labtrack.autolog.lightgbm",
         "xgboost": "labtrack.autolog.xgboost", "transformers": "labtrack.autolog.transformers",
         "lightning": "labtrack.autolog.lightning"}


def __getattr__(name: str) -> object:
    if name == "evaluate":
        from labtrack.models.evaluation import evaluate

        return evaluate
    if name == "models":
        import labtrack.models

        return labtrack.models
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    if name in _FLAVORS or name == "widgets":  # widgets: ipywidgets/matplotlib load on first use
        import importlib

        module = importlib.import_module(
            "labtrack.widgets" if name == "widgets" else f"labtrack.models.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'labtrack' has no attribute {name!r}")

"""System metrics: a background sampler that logs CPU, memory, disk, network and GPU use.

MLflow's names and settings: the metrics are ``system/<name>`` (``system/<node>/<name>``
with a node id), sampled every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds
(10 by default) and logged as their mean every ``MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING``
samples (1), at steps 0, 1, 2...  ``lt.start_run(log_system_metrics=True)``,
``lt.enable_system_metrics_logging()`` or ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true``
turn it on.  Points go through the client's non-blocking sender, so a compute node
that spools keeps its system metrics too.

GPUs: NVIDIA through NVML (``nvidia-ml-py``), AMD through ``amdsmi`` or the
``rocm-smi`` command.  When none is usable the reason is written once as a
one-line warning, never dropped silently.
"""

from __future__ import annotations

import os
from typing import Any

PREFIX = "system/"
DEFAULT_INTERVAL_S = 10.0
DEFAULT_SAMPLES_BEFORE_LOGGING = 1
ENABLE_ENV = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
INTERVAL_ENV = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"
SAMPLES_ENV = "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING"
NODE_ENV = "MLFLOW_SYSTEM_METRICS_NODE_ID"



class _Settings:
    enabled: bool | None = None  # None: the environment variable decides
    interval: float | None = None
    samples: int | None = None
    node_id: str | None = None
    gpu_warned = False


_settings = _Settings()


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def enable_system_metrics_logging() -> None:
    """Log system metrics for every run started from now on (MLflow's function)."""
    _settings.enabled = True


def disable_system_metrics_logging() -> None:
    """Stop logging system metrics for runs started from now on."""
    _settings.enabled = False


def set_system_metrics_sampling_interval(interval: float | None) -> None:
    """Seconds between two samples (None: the environment, else 10)."""
    _settings.interval = None if interval is None else float(interval)


def set_system_metrics_samples_before_logging(samples: int | None) -> None:
    """How many samples are averaged into one logged point (None: the environment, else 1)."""
    _settings.samples = None if samples is None else int(samples)


def set_system_metrics_node_id(node_id: str | None) -> None:
    """Name this node in the metric keys (``system/<node_id>/...``), for multi-node runs."""
    _settings.node_id = node_id


def enabled(requested: bool | None) -> bool:
    """Whether a run started with ``log_system_metrics=requested`` samples system metrics."""
    if requested is not None:
        return bool(requested)
    if _settings.enabled is not None:
        return _settings.enabled
    return _env_true(ENABLE_ENV)


def _interval() -> float:
    if _settings.interval is not None:
        return _settings.interval
    value = os.environ.get(INTERVAL_ENV)
    return float(value) if value else DEFAULT_INTERVAL_S


def _samples() -> int:
    if _settings.samples is not None:
        return max(1, _settings.samples)
    value = os.environ.get(SAMPLES_ENV)
    return max(1, int(value)) if value else DEFAULT_SAMPLES_BEFORE_LOGGING


_monitors: dict[str, Any] = {}


def start_for_run(run_id: str, client: Any, first_step: int = 0) -> Any:
    """Start (once) the sampler of a run that the fluent API started."""
    monitor = _monitors.get(run_id)
    if monitor is None:
        from labtrack.client.system_sampler import SystemMetricsMonitor

        monitor = _monitors[run_id] = SystemMetricsMonitor(run_id, client, first_step=first_step)
        monitor.start()
    return monitor


def stop_for_run(run_id: str) -> None:
    """Stop the run's sampler, if it has one."""
    monitor = _monitors.pop(run_id, None)
    if monitor is not None:
        monitor.stop()


def __getattr__(name: str) -> Any:
    # the sampler's classes, loaded on first use: ``import labtrack`` does not pay for them
    if name in ("SystemMetricsMonitor", "gpu_source"):
        from labtrack.client import system_sampler

        return getattr(system_sampler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

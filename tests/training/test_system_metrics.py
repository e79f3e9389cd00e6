"""System metrics: ``log_system_metrics=True`` samples CPU, memory, disk and network into the run,
under MLflow's ``system/...`` names; a missing GPU library is said in one line, never silently."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

import labtrack as lt
from labtrack.client import system_metrics
from tests.client.conftest import CLIENT_ENV, TrackingServer
from tests.client_state import reset_client_state

pytest.importorskip("psutil", reason="psutil is not installed")


@pytest.fixture
def lt_run_env(lt_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackingServer]:
    for name in CLIENT_ENV + (system_metrics.ENABLE_ENV, system_metrics.INTERVAL_ENV,
                              system_metrics.SAMPLES_ENV, system_metrics.NODE_ENV):
        monkeypatch.delenv(name, raising=False)
    if lt_server.token:
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", lt_server.token)
    reset_client_state()
    lt.set_tracking_uri(lt_server.uri)
    lt.set_experiment("system-metrics")
    lt.set_system_metrics_sampling_interval(1)
    yield lt_server
    lt.set_system_metrics_sampling_interval(None)
    lt.disable_system_metrics_logging()
    system_metrics._settings.enabled = None
    reset_client_state()


def _steps(run_id: str, key: str) -> list[int]:
    return [m.step for m in lt.get_metric_history(run_id, key)]


def test_five_second_run_has_cpu_and_memory_series(lt_run_env: TrackingServer) -> None:
    with lt.start_run(log_system_metrics=True) as run:
        time.sleep(5)
    keys = set(lt.get_run(run.info.run_id).data.metrics)
    for key in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
                "system/system_memory_usage_percentage"):
        steps = _steps(run.info.run_id, key)
        assert len(steps) >= 4, (key, steps)
        assert steps == sorted(steps) and steps[0] == 0
    assert {"system/disk_usage_percentage", "system/network_receive_megabytes"} <= keys


def test_environment_variable_and_node_id(lt_run_env: TrackingServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(system_metrics.ENABLE_ENV, "true")
    monkeypatch.setenv(system_metrics.NODE_ENV, "node7")
    with lt.start_run() as run:
        time.sleep(1.5)
    keys = set(lt.get_run(run.info.run_id).data.metrics)
    assert "system/node7/cpu_utilization_percentage" in keys, keys
    monkeypatch.delenv(system_metrics.ENABLE_ENV)
    with lt.start_run() as quiet:
        time.sleep(1.2)
    assert not lt.get_run(quiet.info.run_id).data.metrics  # off unless asked


def test_same_names_as_mlflow(lt_run_env: TrackingServer, mlflow_server: TrackingServer,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    with lt.start_run(log_system_metrics=True) as run:
        time.sleep(2.5)
    ours = {k for k in lt.get_run(run.info.run_id).data.metrics if "gpu_" not in k}
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    mlflow.set_tracking_uri(mlflow_server.uri)
    try:
        with mlflow.start_run(log_system_metrics=True) as theirs_run:
            time.sleep(2.5)
        theirs = {k for k in mlflow.MlflowClient().get_run(theirs_run.info.run_id).data.metrics
                  if "gpu_" not in k}
    finally:
        mlflow.set_tracking_uri(None)
    assert ours == theirs


def _nvml_reason() -> str | None:
    """None when NVML works here, else why not."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError as err:
        return f"NVML is not usable on this machine: {err}"
    return None if count else "NVML sees no GPU"


def test_missing_gpu_library_is_one_warning_line(lt_run_env: TrackingServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    if _nvml_reason() is None:
        pytest.skip("this machine has a usable NVML GPU; the warning path needs one without")
    system_metrics._settings.gpu_warned = False
    with caplog.at_level(logging.WARNING, logger="labtrack.system_metrics"):
        for _ in range(2):  # warned once per process, not once per run
            with lt.start_run(log_system_metrics=True):
                time.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if "GPU metrics are not logged" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "NVML" in lines[0] or "nvidia-ml-py" in lines[0]


@pytest.mark.skipif(_nvml_reason() is not None, reason=f"no NVML GPU: {_nvml_reason()}")
def test_gpu_series_through_nvml(lt_run_env: TrackingServer) -> None:
    with lt.start_run(log_system_metrics=True) as run:
        time.sleep(3.5)
    keys = set(lt.get_run(run.info.run_id).data.metrics)
    for key in ("system/gpu_0_utilization_percentage", "system/gpu_0_memory_usage_megabytes",
                "system/gpu_0_memory_usage_percentage"):
        assert key in keys and len(_steps(run.info.run_id, key)) >= 2, keys


def test_sampler_overhead_is_small(lt_run_env: TrackingServer) -> None:
    """The sampler's own cost per sample: reported, and bounded loosely (a loaded CI box)."""
    monitor = system_metrics.SystemMetricsMonitor("unused", client=None, sampling_interval=3600)
    monitor.start()
    try:
        t0 = time.perf_counter()
        for _ in range(20):
            monitor._collect()
        per_sample = (time.perf_counter() - t0) / 20
    finally:
        monitor._stop.set()
        monitor._pending.clear()
        monitor._last.clear()
    print(f"system metrics: {per_sample * 1000:.2f} ms per sample")
    assert per_sample < 0.5


def test_a_fresh_client_logs_a_batch_without_hanging(lt_run_env: TrackingServer) -> None:
    """The sampler logs through ``Client.log_batch``; a Client whose first call that is must not
    deadlock (its sender once resolved the transport under the lock the transport takes)."""
    import threading

    from labtrack.entities import Metric

    run = lt.start_run()
    lt.end_run()
    client = lt.Client(lt_run_env.uri)
    worker = threading.Thread(target=lambda: client.log_batch(
        run.info.run_id, metrics=[Metric("system/x", 1.0, int(time.time() * 1000), 0)]), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "log_batch hung on a fresh client"
    client.flush(30)
    assert lt.get_run(run.info.run_id).data.metrics["system/x"] == 1.0

"""The system-metrics sampler: its sources (CPU and memory, disk, network, NVIDIA and AMD GPUs)
and the thread that samples them into a run.  Loaded only when a run samples system metrics;
the settings and MLflow's names live in ``labtrack.client.system_metrics``."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from labtrack.client.system_metrics import NODE_ENV, PREFIX, _interval, _samples, _settings


def _warn(message: str, *args: Any) -> None:
    import logging  # not at import time: ``import labtrack`` stays light

    logging.getLogger("labtrack.system_metrics").warning(message, *args)


# -- sources: each returns {name: value} per sample ---------------------------------------
class _Source:
    mean = True  # False: the last sample is logged (counters since the start)

    def sample(self) -> dict[str, float]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _CpuMemory(_Source):
    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        psutil.cpu_percent()  # the first call only starts psutil's interval

    def sample(self) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        return {"cpu_utilization_percentage": self._psutil.cpu_percent(),
                "system_memory_usage_megabytes": memory.used / 1e6,
                "system_memory_usage_percentage": memory.used / memory.total * 100}


class _Disk(_Source):
    def __init__(self) -> None:
        import psutil

        self._psutil = psutil

    def sample(self) -> dict[str, float]:
        usage = self._psutil.disk_usage(os.sep)
        return {"disk_usage_percentage": usage.percent, "disk_usage_megabytes": usage.used / 1e6,
                "disk_available_megabytes": usage.free / 1e6}


class _Network(_Source):
    mean = False

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        start = psutil.net_io_counters()
        self._rx0, self._tx0 = start.bytes_recv, start.bytes_sent

    def sample(self) -> dict[str, float]:
        now = self._psutil.net_io_counters()
        return {"network_receive_megabytes": (now.bytes_recv - self._rx0) / 1e6,
                "network_transmit_megabytes": (now.bytes_sent - self._tx0) / 1e6}


class _NvidiaGpus(_Source):
    """NVML through ``nvidia-ml-py`` (imported as ``pynvml``); raises when unusable."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as err:
            raise RuntimeError("nvidia-ml-py is not installed (pip install 'labtrack[gpu]')") from err
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            raise RuntimeError(f"NVML is not available ({err})") from err
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                         for i in range(pynvml.nvmlDeviceGetCount())]
        if not self._handles:
            raise RuntimeError("NVML sees no GPU")

    def _read(self, out: dict[str, float], i: int, handle: Any) -> None:
        nvml = self._nvml
        def memory() -> None:
            info = nvml.nvmlDeviceGetMemoryInfo(handle)
            out[f"gpu_{i}_memory_usage_percentage"] = round(info.used / info.total * 100, 1)
            out[f"gpu_{i}_memory_usage_megabytes"] = info.used / 1e6

        def utilisation() -> None:
            out[f"gpu_{i}_utilization_percentage"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)

        def power() -> None:
            milliwatts = nvml.nvmlDeviceGetPowerUsage(handle)
            out[f"gpu_{i}_power_usage_watts"] = milliwatts / 1000
            limit = nvml.nvmlDeviceGetEnforcedPowerLimit(handle)
            if limit:
                out[f"gpu_{i}_power_usage_percentage"] = milliwatts / limit * 100

        def temperature() -> None:
            out[f"gpu_{i}_temperature_celsius"] = float(
                nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))

        reads: list[Callable[[], None]] = [memory, utilisation, power, temperature]
        for read in reads:
            try:
                read()
            except nvml.NVMLError:  # a field this GPU does not report (e.g. power on some boards)
                continue

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, handle in enumerate(self._handles):
            self._read(out, i, handle)
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass


class _AmdSmi(_Source):
    """AMD GPUs through the ``amdsmi`` Python package (ROCm 6+)."""

    def __init__(self) -> None:
        import amdsmi

        amdsmi.amdsmi_init()
        self._smi = amdsmi
        self._handles = amdsmi.amdsmi_get_processor_handles()
        if not self._handles:
            raise RuntimeError("amdsmi sees no GPU")

    def sample(self) -> dict[str, float]:
        smi = self._smi
        out: dict[str, float] = {}
        for i, h in enumerate(self._handles):
            try:
                out[f"gpu_{i}_utilization_percentage"] = float(smi.amdsmi_get_gpu_activity(h)["gfx_activity"])
            except Exception:
                pass
            try:
                vram = smi.amdsmi_get_gpu_vram_usage(h)  # MB
                out[f"gpu_{i}_memory_usage_megabytes"] = float(vram["vram_used"])
                out[f"gpu_{i}_memory_usage_percentage"] = vram["vram_used"] / vram["vram_total"] * 100
            except Exception:
                pass
            try:
                power = smi.amdsmi_get_power_info(h)
                watts = float(power.get("current_socket_power") or power.get("average_socket_power"))
                out[f"gpu_{i}_power_usage_watts"] = watts
                if power.get("power_limit"):
                    # amdsmi reports the limit in microwatts on some releases, watts on others
                    limit = float(power["power_limit"])
                    limit = limit / 1e6 if limit > 1e5 else limit
                    out[f"gpu_{i}_power_usage_percentage"] = watts / limit * 100
            except Exception:
                pass
            try:
                out[f"gpu_{i}_temperature_celsius"] = float(smi.amdsmi_get_temp_metric(
                    h, smi.AmdSmiTemperatureType.EDGE, smi.AmdSmiTemperatureMetric.CURRENT))
            except Exception:
                pass
        return out

    def close(self) -> None:
        try:
            self._smi.amdsmi_shut_down()
        except Exception:
            pass


class _RocmSmi(_Source):
    """AMD GPUs through the ``rocm-smi --json`` command (older ROCm, no Python package)."""

    def __init__(self) -> None:
        import shutil

        self._exe = shutil.which("rocm-smi")
        if not self._exe:
            raise RuntimeError("rocm-smi is not on PATH")
        if not self.sample():
            raise RuntimeError("rocm-smi reports no GPU")

    def sample(self) -> dict[str, float]:
        import json
        import re
        import subprocess

        try:
            done = subprocess.run([self._exe, "--showuse", "--showmemuse", "--showpower",
                                   "--showtemp", "--json"], capture_output=True, text=True, timeout=5)
            cards = json.loads(done.stdout or "{}")
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return {}
        out: dict[str, float] = {}
        for card, fields in cards.items():
            match = re.fullmatch(r"card(\d+)", card)
            if not match or not isinstance(fields, dict):
                continue
            i = match.group(1)
            for key, value in fields.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                low = key.lower()
                if low.startswith("gpu use"):
                    out[f"gpu_{i}_utilization_percentage"] = number
                elif "memory" in low and "%" in low:
                    out[f"gpu_{i}_memory_usage_percentage"] = number
                elif "power" in low and "(w)" in low:
                    out[f"gpu_{i}_power_usage_watts"] = number
                elif low.startswith("temperature") and "edge" in low:
                    out[f"gpu_{i}_temperature_celsius"] = number
        return out


def gpu_source() -> tuple[_Source | None, str]:
    """The first usable GPU source and, when there is none, why (one line)."""
    reasons = []
    for cls in (_NvidiaGpus, _AmdSmi, _RocmSmi):
        try:
            return cls(), ""
        except Exception as err:  # ImportError, NVMLError, no device...
            reasons.append(f"{cls.__name__.strip('_')}: {err}")
    return None, "; ".join(reasons)


class SystemMetricsMonitor:
    """Samples system metrics in a daemon thread and logs them into one run."""

    def __init__(self, run_id: str, client: Any, sampling_interval: float | None = None,
                 samples_before_logging: int | None = None, node_id: str | None = None,
                 first_step: int = 0) -> None:
        self.run_id = run_id
        self.client = client
        self.interval = sampling_interval if sampling_interval is not None else _interval()
        self.samples_before_logging = samples_before_logging or _samples()
        node = node_id or _settings.node_id or os.environ.get(NODE_ENV)
        self.prefix = PREFIX + (node + "/" if node else "")
        self.step = first_step
        self.sources: list[_Source] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: dict[str, list[float]] = defaultdict(list)
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self.sample_seconds = 0.0  # time spent sampling: the sampler's own overhead
        self.samples = 0

    def start(self) -> None:
        """Open the sources and start the sampling thread."""
        for cls in (_CpuMemory, _Disk, _Network):
            try:
                self.sources.append(cls())
            except Exception as err:
                _warn("labtrack: system metrics: %s not sampled: %s", cls.__name__.strip("_"), err)
        gpu, why = gpu_source()
        if gpu is not None:
            self.sources.append(gpu)
        elif not _settings.gpu_warned:
            _settings.gpu_warned = True
            _warn("labtrack: GPU metrics are not logged: %s", why)
        self._thread = threading.Thread(target=self._loop, name="labtrack-system-metrics", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        t0 = time.perf_counter()
        with self._lock:
            for source in self.sources:
                try:
                    values = source.sample()
                except Exception:
                    continue
                for key, value in values.items():
                    if source.mean:
                        self._pending[key].append(float(value))
                    else:
                        self._last[key] = float(value)
        self.sample_seconds += time.perf_counter() - t0
        self.samples += 1

    def _publish(self) -> None:
        from labtrack.entities import Metric

        with self._lock:
            values = {k: round(sum(v) / len(v), 1) for k, v in self._pending.items() if v}
            values.update(self._last)
            self._pending.clear()
            self._last = {}
        if not values:
            return
        now = int(time.time() * 1000)
        points = [Metric(self.prefix + k, v, now, self.step) for k, v in values.items()]
        self.step += 1
        try:
            self.client.log_batch(self.run_id, metrics=points)
        except Exception as err:  # the run went away: stop quietly, training goes on
            _warn("labtrack: system metrics stopped: %s", err)
            self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for _ in range(self.samples_before_logging):
                self._collect()
                if self._stop.wait(self.interval):
                    return
            self._publish()

    def stop(self) -> None:
        """Stop sampling; what was sampled since the last point is logged as one more point."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval + 5))
            self._thread = None
        self._publish()
        for source in self.sources:
            source.close()



"""GPU system metrics, end to end, on a machine with an NVIDIA GPU: NVML -> lt's sampler ->
a real ``labtrack server`` -> the run's ``system/gpu_*`` series, printed.

    python bench/gpu_check.py [--seconds 8]

It starts a labtrack server on a temporary SQLite file, runs ``lt.start_run(log_system_metrics=True)``
with a 1 s sampling interval while torch multiplies matrices on ``cuda:0`` (or sleeps when torch has
no CUDA), then reads every ``system/gpu_*`` series back and prints it.  Exit status 0 when the GPU
utilisation and memory series exist with at least 3 points each, 1 otherwise (and why).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from common import scratch, start_labtrack  # noqa: E402


def load(seconds: float) -> str:
    try:
        import torch
    except ImportError:
        time.sleep(seconds)
        return "no torch: idle GPU"
    if not torch.cuda.is_available():
        time.sleep(seconds)
        return "torch without CUDA: idle GPU"
    a = torch.randn(4096, 4096, device="cuda")
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        a = (a @ a).clamp_(-1, 1)
        n += 1
    torch.cuda.synchronize()
    return f"{n} 4096x4096 matmuls on {torch.cuda.get_device_name(0)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    from labtrack.client.system_metrics import gpu_source

    source, why = gpu_source()
    print(f"GPU source: {type(source).__name__ if source else None} {why}")
    if source is not None:
        source.close()
    import labtrack as lt

    with scratch("gpu-check-") as workdir:
        server = start_labtrack(workdir, token=None)
        try:
            lt.set_tracking_uri(server.url)
            lt.set_experiment("gpu-check")
            lt.set_system_metrics_sampling_interval(1)
            with lt.start_run(log_system_metrics=True) as run:
                print("workload:", load(args.seconds))
            metrics = lt.get_run(run.info.run_id).data.metrics
            gpu_keys = sorted(k for k in metrics if k.startswith("system/gpu_"))
            lengths = {}
            for key in gpu_keys:
                points = lt.get_metric_history(run.info.run_id, key)
                lengths[key] = len(points)
                print(f"{key:<45} {len(points):3d} points: " + ", ".join(f"{p.value:g}" for p in points))
        finally:
            server.stop()
    wanted = ("system/gpu_0_utilization_percentage", "system/gpu_0_memory_usage_megabytes")
    short = [k for k in wanted if lengths.get(k, 0) < 3]
    if short:
        print(f"FAIL: fewer than 3 points in {short}" + (f" ({why})" if why else ""))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

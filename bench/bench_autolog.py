"""The cost of autolog + system metrics on a small Lightning epoch loop: labtrack vs MLflow.

Two processes train the same tiny Lightning model (same seed, epochs and steps), each alternating
the loop with autolog off and on, ``--repeat`` times after a warm-up:
  labtrack  ``lt.pytorch.autolog(log_every_n_step=1)`` + ``lt.start_run(log_system_metrics=True)``
            against a fresh ``labtrack server``;
  mlflow    ``mlflow.pytorch.autolog(log_every_n_step=1)`` + ``mlflow.start_run(log_system_metrics=True)``
            through the mlflow client against a fresh ``mlflow server``.
A tracked figure is the wall time of ``trainer.fit`` plus ending the run with everything delivered.
The overhead is the median of (tracked - plain) over the pairs; the ratio is MLflow's overhead over
labtrack's, measured in the same run.  Timings never gate tests.

    python bench/bench_autolog.py [--epochs 3] [--steps 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from common import machine, median, quiet_env, scratch, start_labtrack, start_mlflow, write_json  # noqa: E402

WORKER = """
import os, sys, time, json
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

kind, epochs, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
X = torch.randn(steps * 16, 16)
y = (X.sum(dim=1, keepdim=True) > 0).float()

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    def forward(self, x):
        return self.net(x)
    def training_step(self, batch, _):
        x, t = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self(x), t)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

def trainer():
    return pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")

data = DataLoader(TensorDataset(X, y), batch_size=16)
settings = dict(log_every_n_step=1, checkpoint=False, log_models=False)
repeat = int(sys.argv[4])


def fit():
    start = time.perf_counter()
    trainer().fit(Tiny(), data)
    return time.perf_counter() - start


# Paired in one process: the same loop with autolog off, then on (run + system metrics, ended and
# delivered), so process start, imports and machine load weigh on both alike.
if kind == "labtrack":
    import labtrack as lt
    lt.set_system_metrics_sampling_interval(1)
    def tracked():
        lt.pytorch.autolog(**settings)
        start = time.perf_counter()
        with lt.start_run(log_system_metrics=True):
            trainer().fit(Tiny(), data)
        lt.flush()
        elapsed = time.perf_counter() - start
        lt.pytorch.autolog(disable=True)
        return elapsed
    lt.pytorch.autolog(disable=True)
else:
    import mlflow
    mlflow.set_system_metrics_sampling_interval(1)
    def tracked():
        mlflow.pytorch.autolog(**settings)
        start = time.perf_counter()
        with mlflow.start_run(log_system_metrics=True):
            trainer().fit(Tiny(), data)
        mlflow.flush_async_logging()
        elapsed = time.perf_counter() - start
        mlflow.pytorch.autolog(disable=True)
        return elapsed
    mlflow.pytorch.autolog(disable=True)
fit()  # warm-up: first-call costs are nobody's overhead
plain, with_log = [], []
for _ in range(repeat):
    plain.append(fit())
    with_log.append(tracked())
print("RESULT " + json.dumps({"kind": kind, "plain": plain, "tracked": with_log}))
"""


def run_worker(kind: str, args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, list[float]]:
    script = workdir / "worker.py"
    script.write_text(WORKER)
    done = subprocess.run([sys.executable, str(script), kind, str(args.epochs), str(args.steps), str(args.repeat)],
                          env=env, cwd=workdir, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="training steps per epoch")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    quiet_env()
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("MLFLOW_TRACKING", "LABTRACK_TRACKING"))}
    base_env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONWARNINGS="ignore",
                    PYTHONPATH=os.pathsep.join([str(BENCH_DIR.parent / "src"), base_env.get("PYTHONPATH", "")]))
    results: dict[str, dict[str, list[float]]] = {}
    with scratch("bench-autolog-") as workdir:
        lt_server = start_labtrack(workdir / "lt", token=None)
        ml_server = start_mlflow(workdir / "ml")
        try:
            env = dict(base_env, LABTRACK_TRACKING_URI=lt_server.url, MLFLOW_EXPERIMENT_NAME="bench")
            results["labtrack"] = run_worker("labtrack", args, env, workdir)
            env = dict(base_env, MLFLOW_TRACKING_URI=ml_server.url, MLFLOW_EXPERIMENT_NAME="bench")
            results["mlflow"] = run_worker("mlflow", args, env, workdir)
        finally:
            lt_server.stop()
            ml_server.stop()
    steps = args.epochs * args.steps
    overhead = {k: median([t - p for p, t in zip(r["plain"], r["tracked"])]) for k, r in results.items()}
    ratio = overhead["mlflow"] / overhead["labtrack"] if overhead["labtrack"] > 0 else float("inf")
    print(f"Lightning loop, {args.epochs} epochs x {args.steps} steps, autolog with per-step metrics + "
          f"system metrics every 1 s; median of {args.repeat} paired runs (same process, off then on)")
    for kind, r in results.items():
        print(f"  {kind:<9} plain {median(r['plain']):7.2f} s   tracked {median(r['tracked']):7.2f} s   "
              f"overhead {overhead[kind]:6.2f} s ({overhead[kind] / steps * 1000:6.2f} ms/step)")
    print(f"  ratio (mlflow overhead / labtrack overhead): {ratio:.1f}x")
    path = write_json("bench_autolog.json", {"machine": machine(), "epochs": args.epochs, "steps": args.steps,
                                             "repeat": args.repeat, "seconds": results,
                                             "overhead_s": overhead, "ratio": ratio})
    print(f"  written to {path}")


if __name__ == "__main__":
    main()

"""The SLURM backend: an entry point (or a parameter grid, as one job array) submitted with sbatch.

Each task continues a run created at submission (``MLFLOW_RUN_ID``), under one
parent run for a sweep.  Tasks name the database (``LABTRACK_DATABASE``), so a
task that cannot reach the server spools and the server ingests it.  The
scheduler is the source of truth for how a job ended: ``follow`` reads
``sacct`` (or, without accounting, ``scontrol``, which keeps finished jobs for
``MinJobAge`` seconds) and ends each run as its job ended, with the state and
reason as tags, so a job the scheduler killed never stays RUNNING.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrack.client.client import Client
from labtrack.errors import LabtrackError
from labtrack.projects import environments
from labtrack.projects.runner import Launch, tracking_env
from labtrack.projects.sources import cache_dir
from labtrack.projects.spec import ProjectError
from labtrack.slurm_jobs import (ENDED, TAG_ARRAY_JOB, TAG_JOB, TAG_REASON, TAG_STATE, TAG_STDERR,
                                 TAG_STDOUT, TAG_TASK, TaskState, cancel_job, decide, query)

@dataclass
class SlurmConfig:
    """``--backend-config``: what goes into the job script's ``#SBATCH`` lines and around the command."""

    partition: str | None = None
    time: str | None = None
    cpus: int | None = None
    gpus: str | None = None
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    max_parallel: int | None = None
    extra: list[str] = field(default_factory=list)     # more sbatch options: "--constraint=a100"
    setup: list[str] = field(default_factory=list)     # shell lines before the command: module load ...
    launcher: str | None = None                        # a prefix: "srun", "apptainer exec img.sif"
    poll_interval: float = 5.0

    @classmethod
    def load(cls, source: str | os.PathLike | dict[str, Any] | None) -> SlurmConfig:
        import yaml

        if source is None:
            return cls()
        doc = source if isinstance(source, dict) else yaml.safe_load(Path(source).read_text()) or {}
        if not isinstance(doc, dict):
            raise ProjectError("the SLURM backend config must be a mapping")
        aliases = {"cpus_per_task": "cpus", "cpus-per-task": "cpus", "gres": "gpus",
                   "max-parallel": "max_parallel", "sbatch": "extra", "poll-interval": "poll_interval"}
        known = {f for f in cls.__dataclass_fields__}
        values: dict[str, Any] = {}
        for key, value in doc.items():
            name = aliases.get(key, key)
            if name not in known:
                raise ProjectError(f"unknown SLURM backend setting {key!r} "
                                   f"(known: {', '.join(sorted(known))})")
            values[name] = value
        for name in ("extra", "setup"):
            if isinstance(values.get(name), str):
                values[name] = [values[name]]
        for name, kind in (("cpus", int), ("max_parallel", int), ("poll_interval", float)):
            if values.get(name) is not None:
                try:
                    values[name] = kind(values[name])
                except (TypeError, ValueError):
                    raise ProjectError(f"SLURM backend setting {name!r} must be a number, "
                                       f"got {values[name]!r}") from None
        for name in ("time", "mem", "gpus", "partition", "account", "qos", "launcher"):
            if values.get(name) is not None:
                values[name] = str(values[name])
        return cls(**values)

    def sbatch_lines(self) -> list[str]:
        opts = []
        for flag, value in (("--partition", self.partition), ("--time", self.time),
                            ("--cpus-per-task", self.cpus), ("--mem", self.mem),
                            ("--account", self.account), ("--qos", self.qos)):
            if value not in (None, ""):
                opts.append(f"{flag}={value}")
        if self.gpus not in (None, "", 0, "0"):
            gpus = str(self.gpus)
            opts.append(f"--gres=gpu:{gpus}" if ":" in gpus or gpus.isdigit() else f"--gpus={gpus}")
        opts += [str(e) for e in self.extra]
        return [f"#SBATCH {o}" for o in opts]


def expand_grid(parameters: dict[str, str]) -> list[dict[str, str]]:
    """``{"lr": "0.1,0.01", "batch": "32"}`` -> every combination, in a stable order."""
    keys = list(parameters)
    choices = [[v.strip() for v in str(parameters[k]).split(",")] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def load_sweep(path: str | os.PathLike) -> list[dict[str, str]]:
    """A sweep file: ``grid: {lr: [0.1, 0.01]}`` (every combination) and/or ``runs: [{lr: 0.1}, ...]``."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text()) or {}
    out: list[dict[str, str]] = []
    grid = doc.get("grid") if isinstance(doc, dict) else None
    if grid:
        keys = list(grid)
        values = [v if isinstance(v, list) else [v] for v in grid.values()]
        out += [{k: str(v) for k, v in zip(keys, combo)} for combo in itertools.product(*values)]
    for entry in (doc.get("runs") or []) if isinstance(doc, dict) else doc:
        out.append({str(k): str(v) for k, v in entry.items()})
    if not out:
        raise ProjectError(f"sweep file {path} has neither a grid nor runs")
    return out


def require_slurm() -> None:
    if shutil.which("sbatch") is None:
        raise ProjectError("the SLURM backend needs sbatch, which is not on PATH "
                           "(run on a cluster's login node, or `module load slurm`)")


@dataclass
class Sweep:
    """A submitted job array: its runs by task index, and the parent run of a sweep."""

    array_job_id: str
    runs: dict[int, str]
    parent_run_id: str | None
    folder: Path


def submit(launch: Launch, client: Client, experiment: str, grid: list[dict[str, str]],
           config: SlurmConfig, run_name: str | None = None) -> Sweep:
    """Create the runs, write the job script and submit it as one array."""
    require_slurm()
    env = environments.prepare(launch.project, launch.env_manager)
    combos = [{**launch.parameters, **g} for g in grid] or [dict(launch.parameters)]
    for combo in combos:  # every task's values are checked before anything is created
        launch.entry_point.compute_parameters(combo)
    parent = None
    if len(combos) > 1:
        parent_run = client.create_run(experiment, tags={**launch.tags("slurm", env.manager),
                                                         "labtrack.sweep.size": str(len(combos))},
                                       run_name=run_name or f"sweep-{launch.entry_point.name}")
        parent = parent_run.info.run_id
    runs: dict[int, str] = {}
    for i, combo in enumerate(combos):
        tags = {"mlflow.parentRunId": parent} if parent else {}
        name = f"{run_name or launch.entry_point.name}-{i}" if parent else run_name
        run_id = launch.create_run(client, experiment, "slurm", env.manager, parameters=combo,
                                   run_name=name, extra_tags=tags)
        client.update_run(run_id, "SCHEDULED")
        runs[i] = run_id
    folder = cache_dir() / "slurm" / (parent or runs[0])
    folder.mkdir(parents=True, exist_ok=True)
    task_env = tracking_env(client, batch=True)
    for i, combo in enumerate(combos):
        _write_task(folder / f"task-{i}.sh", launch, combo, runs[i], experiment, env, config, task_env)
    script = folder / "job.sh"
    script.write_text(_job_script(folder, len(combos), launch, config))
    proc = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if proc.returncode:
        message = (proc.stderr.strip() or "sbatch failed").splitlines()[-1]
        for run_id in runs.values():
            client.set_terminated(run_id, "FAILED")
            client.set_tag(run_id, TAG_REASON, message, synchronous=True)
        if parent:
            client.set_terminated(parent, "FAILED")
        raise ProjectError(f"sbatch refused the job: {message}")
    array_job = proc.stdout.strip().split(";")[0]
    for i, run_id in runs.items():
        client.log_batch(run_id, tags={TAG_JOB: f"{array_job}_{i}", TAG_ARRAY_JOB: array_job,
                                       TAG_TASK: str(i),
                                       TAG_STDOUT: str(folder / f"slurm-{array_job}_{i}.out"),
                                       TAG_STDERR: str(folder / f"slurm-{array_job}_{i}.err")},
                         synchronous=True)
    if parent:
        client.log_batch(parent, tags={TAG_ARRAY_JOB: array_job}, synchronous=True)
    return Sweep(array_job, runs, parent, folder)


def _write_task(path: Path, launch: Launch, combo: dict[str, str], run_id: str, experiment: str,
                env: environments.Environment, config: SlurmConfig, task_env: dict[str, str]) -> None:
    command = launch.command(combo)
    if config.launcher:
        command = f"{config.launcher} bash -c {shlex.quote(command)}"
    lines = ["#!/bin/bash", "set -e"]
    lines += [f"unset {v}" for v in ("MLFLOW_TRACKING_URI", "LABTRACK_TRACKING_URI", "MLFLOW_RUN_ID")]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in task_env.items()]
    lines += [f"export MLFLOW_RUN_ID={run_id}", f"export MLFLOW_EXPERIMENT_ID={shlex.quote(experiment)}"]
    lines += env.shell_lines() + [str(s) for s in config.setup]
    lines += [f"cd {shlex.quote(str(launch.source.folder))}", command]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o700)


def _job_script(folder: Path, tasks: int, launch: Launch, config: SlurmConfig) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"labtrack-{launch.project.name or launch.entry_point.name}")
    array = f"0-{tasks - 1}" + (f"%{config.max_parallel}" if config.max_parallel else "")
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --array={array}",
             f"#SBATCH --output={folder}/slurm-%A_%a.out", f"#SBATCH --error={folder}/slurm-%A_%a.err"]
    lines += config.sbatch_lines()
    lines += [f"exec bash {shlex.quote(str(folder))}/task-$SLURM_ARRAY_TASK_ID.sh"]
    return "\n".join(lines) + "\n"


def reconcile(client: Client, run_id: str, task: TaskState | None) -> str | None:
    """Bring a run's status and tags in line with its job; returns the run's status afterwards."""
    if task is None:
        return None
    run = client.get_run(run_id)
    change = decide(run.info.status, run.tags, task)
    if change.tags:
        client.log_batch(run_id, tags=change.tags, synchronous=True)
    if change.status is None:
        return run.info.status
    if change.status in ENDED:
        client.set_terminated(run_id, change.status)
        _upload_logs(client, run)
    else:
        client.update_run(run_id, change.status)
    return change.status


def _upload_logs(client: Client, run: Any) -> None:
    """The tails of the job's stdout and stderr, as artifacts the run page shows."""
    import tempfile

    for tag, name in ((TAG_STDOUT, "stdout.txt"), (TAG_STDERR, "stderr.txt")):
        path = run.tags.get(tag)
        if not path or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            out.write_bytes(data)
            try:
                client.log_artifact(run.info.run_id, out, "slurm")
            except LabtrackError:
                pass  # an artifact store out of reach must not keep the run RUNNING


def follow(client: Client, sweep: Sweep, poll_interval: float = 5.0, timeout: float | None = None,
           echo: Any = None) -> dict[int, str]:
    """Poll the scheduler until every task's run has ended; returns their statuses."""
    deadline = None if timeout is None else time.monotonic() + timeout
    statuses: dict[int, str] = {}
    seen: dict[int, str] = {}
    while True:
        tasks = query(sweep.array_job_id)
        for i, run_id in sweep.runs.items():
            if statuses.get(i) in ENDED:
                continue
            state = tasks.get(f"{sweep.array_job_id}_{i}")
            status = reconcile(client, run_id, state)
            if status:
                statuses[i] = status
            if echo and state and seen.get(i) != state.state:
                seen[i] = state.state
                echo(f"task {i} ({sweep.array_job_id}_{i}): {state.state}"
                     + (f" on {state.node}" if state.node and state.node != "(null)" else ""))
        if len(statuses) == len(sweep.runs) and all(s in ENDED for s in statuses.values()):
            break
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(poll_interval)
    if sweep.parent_run_id and all(s in ENDED for s in statuses.values()) and statuses:
        final = "FINISHED" if all(s == "FINISHED" for s in statuses.values()) else "FAILED"
        client.set_terminated(sweep.parent_run_id, final)
    return statuses


def cancel(client: Client, run_id: str) -> str:
    """Cancel the job of a run (the whole array, for a sweep's parent); the run ends KILLED."""
    run = client.get_run(run_id)
    job = run.tags.get(TAG_JOB) or run.tags.get(TAG_ARRAY_JOB)
    if not job:
        raise LabtrackError(f"run {run_id} has no SLURM job ({TAG_JOB} tag)", "INVALID_PARAMETER_VALUE")
    try:
        cancel_job(job)
    except RuntimeError as err:
        raise LabtrackError(str(err), "INVALID_STATE") from None
    client.log_batch(run_id, tags={TAG_STATE: "CANCELLED", TAG_REASON: "cancelled with labtrack"},
                     synchronous=True)
    if run.info.status not in ENDED:
        client.set_terminated(run_id, "KILLED")
    return job

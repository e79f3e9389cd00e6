"""What the SLURM scheduler says about jobs, and what that means for their runs.

A leaf module shared by the client side (``labtrack run``/``jobs``) and the
server's job watcher: it runs ``sacct``/``scontrol``/``scancel`` and decides,
without touching any store, how a run's status and tags must change when its
job changed.  The scheduler is the source of truth (DESIGN decision 13).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

TAG_JOB = "labtrack.slurm.job_id"            # what scancel takes: 1234_0 (array task) or 1234
TAG_ARRAY_JOB = "slurm.array_job_id"         # as a run started inside the job tags itself
TAG_TASK = "slurm.array_task_id"
TAG_STATE = "labtrack.slurm.state"           # the scheduler's word: PENDING, RUNNING, TIMEOUT...
TAG_REASON = "labtrack.slurm.reason"
TAG_NODE = "labtrack.slurm.node"
TAG_EXIT = "labtrack.slurm.exit_code"
TAG_STDOUT = "labtrack.slurm.stdout"
TAG_STDERR = "labtrack.slurm.stderr"

# Job state -> run status.  Pending jobs are SCHEDULED; every way a job can end maps to
# an ended run.
RUN_STATUS = {
    "PENDING": "SCHEDULED", "REQUEUED": "SCHEDULED", "REQUEUE_HOLD": "SCHEDULED", "SUSPENDED": "RUNNING",
    "CONFIGURING": "RUNNING", "RUNNING": "RUNNING", "COMPLETING": "RUNNING", "STAGE_OUT": "RUNNING",
    "RESIZING": "RUNNING", "SIGNALING": "RUNNING",
    "COMPLETED": "FINISHED",
    "FAILED": "FAILED", "TIMEOUT": "FAILED", "OUT_OF_MEMORY": "FAILED", "NODE_FAIL": "FAILED",
    "BOOT_FAIL": "FAILED", "DEADLINE": "FAILED", "SPECIAL_EXIT": "FAILED",
    "CANCELLED": "KILLED", "PREEMPTED": "KILLED", "REVOKED": "KILLED",
}
ENDED = frozenset({"FINISHED", "FAILED", "KILLED"})


@dataclass
class TaskState:
    job_id: str          # 1234_5
    state: str           # the scheduler's word
    reason: str = ""
    node: str = ""
    exit_code: str = ""
    submit_time: str = ""
    start_time: str = ""
    end_time: str = ""


@dataclass
class Change:
    """What a run needs so that it says what its job says."""

    status: str | None          # the new status, or None to leave it
    tags: dict[str, str]        # tags to set (only those that differ)


def available() -> bool:
    return shutil.which("squeue") is not None or shutil.which("scontrol") is not None


def query(array_job_id: str) -> dict[str, TaskState]:
    """Every task of the job by ``<array>_<task>`` id, from sacct or else scontrol."""
    states = _sacct(array_job_id)
    return states if states is not None else _scontrol(array_job_id)


def decide(status: str, tags: dict[str, str], task: TaskState | None) -> Change:
    """How a run in ``status`` with ``tags`` must change for its job's state ``task``.

    A run that ended by itself keeps its status unless the scheduler says the job
    failed or was killed (a job that timed out after logging FINISHED did not finish).
    """
    wanted = RUN_STATUS.get(task.state) if task else None
    if task is None or wanted is None:
        return Change(None, {})
    new = {TAG_STATE: task.state}
    if task.node and task.node not in ("None", "(null)", "None assigned"):
        new[TAG_NODE] = task.node
    target: str | None = None
    if wanted in ENDED:
        if task.exit_code:
            new[TAG_EXIT] = task.exit_code
        if task.reason and task.reason not in ("None", "(null)"):
            new[TAG_REASON] = task.reason
        elif task.state != "COMPLETED":
            new[TAG_REASON] = task.state
        if status not in ENDED or (wanted != "FINISHED" and status != wanted):
            target = wanted
    elif status == "SCHEDULED" and wanted == "RUNNING":
        target = "RUNNING"
    return Change(target, {k: v for k, v in new.items() if tags.get(k) != v})


def cancel_job(job_id: str) -> None:
    """``scancel job_id``; raises RuntimeError with scancel's message when it refuses."""
    if shutil.which("scancel") is None:
        raise RuntimeError("scancel is not on PATH")
    proc = subprocess.run(["scancel", job_id], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"scancel {job_id} failed: {proc.stderr.strip()}")


def _sacct(job: str) -> dict[str, TaskState] | None:
    if shutil.which("sacct") is None:
        return None
    proc = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job, "-o",
                           "JobID,State,Reason,NodeList,ExitCode,Submit,Start,End"],
                          capture_output=True, text=True)
    if proc.returncode:  # "Slurm accounting storage is disabled"
        return None
    out: dict[str, TaskState] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 8:
            continue
        state = parts[1].split()[0] if parts[1] else ""
        for one in _expand_ids(parts[0]):
            out[one] = TaskState(one, state, parts[2], parts[3], parts[4], *parts[5:8])
    return out


def _scontrol(job: str) -> dict[str, TaskState]:
    if shutil.which("scontrol") is None:
        return {}
    proc = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True)
    out: dict[str, TaskState] = {}
    if proc.returncode:
        return out  # gone from the controller's memory (older than MinJobAge)
    for line in proc.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        array = fields.get("ArrayJobId")
        tasks = fields.get("ArrayTaskId")
        ids = [f"{array}_{t}" for t in _expand_range(tasks)] if array and tasks else [fields.get("JobId", "")]
        for one in ids:
            out[one] = TaskState(one, fields.get("JobState", ""), fields.get("Reason", ""),
                                 fields.get("NodeList", ""), fields.get("ExitCode", ""),
                                 fields.get("SubmitTime", ""), fields.get("StartTime", ""),
                                 fields.get("EndTime", ""))
    return out


def _expand_ids(job_id: str) -> list[str]:
    m = re.fullmatch(r"(\d+)_\[(.+)\]", job_id)
    if not m:
        return [job_id]
    return [f"{m.group(1)}_{t}" for t in _expand_range(m.group(2))]


def _expand_range(spec: str) -> list[str]:
    out: list[str] = []
    for part in spec.split("%")[0].split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out += [str(i) for i in range(int(lo), int(hi) + 1)]
        elif part:
            out.append(part)
    return out

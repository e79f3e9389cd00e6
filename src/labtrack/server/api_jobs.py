"""SLURM jobs of runs, for the web UI: the tails of a job's output files, and cancelling it.

``GET  /api/2.0/labtrack/jobs/logs?run_id=&stream=stdout|stderr`` answers the last
64 KiB of the file the run's ``labtrack.slurm.stdout``/``stderr`` tag names, and
only when that file is one labtrack wrote for a job (``slurm-<job>_<task>.out``
or ``.err`` inside labtrack's job folders), resolved on disk: a tag cannot make
the server read anything else.  ``POST /api/2.0/labtrack/jobs/cancel`` runs
``scancel`` on the run's job and ends the run KILLED.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from labtrack import slurm_jobs
from labtrack.errors import InvalidParameterValue, InvalidState, ResourceDoesNotExist
from labtrack.server.args import Args
from labtrack.server.base import ServerContext

TAIL_BYTES = 64 * 1024
_LOG_NAME = re.compile(r"slurm-\d+(_\d+)?\.(out|err)")


def job_roots() -> list[Path]:
    """Folders whose job output files may be read: labtrack's job folders (see projects.sources)."""
    base = os.environ.get("LABTRACK_CACHE_DIR") or str(Path.home() / ".cache" / "labtrack")
    return [Path(base).resolve() / "slurm"]


def job_logs(ctx: ServerContext, a: Args) -> dict[str, Any]:
    run = ctx.store.get_run(a.run_id())
    stream = a.str("stream") or "stdout"
    if stream not in ("stdout", "stderr"):
        raise InvalidParameterValue("stream must be stdout or stderr")
    named = run.tags.get(slurm_jobs.TAG_STDOUT if stream == "stdout" else slurm_jobs.TAG_STDERR)
    if not named:
        raise ResourceDoesNotExist(f"run {run.info.run_id} has no SLURM job output")
    path = Path(named).resolve()
    if not _LOG_NAME.fullmatch(path.name) or not any(path.is_relative_to(r) for r in job_roots()):
        raise InvalidParameterValue("this run's job output lies outside labtrack's job folders")
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return {"text": "", "size": 0, "truncated": False}
    return {"text": data.decode("utf-8", "replace"), "size": size, "truncated": size > TAIL_BYTES}


def cancel_job(ctx: ServerContext, a: Args) -> dict[str, Any]:
    run = ctx.store.get_run(a.run_id())
    job = run.tags.get(slurm_jobs.TAG_JOB)
    if not job:
        raise InvalidParameterValue(f"run {run.info.run_id} has no SLURM job")
    try:
        slurm_jobs.cancel_job(job)
    except RuntimeError as err:
        raise InvalidState(str(err)) from None
    ctx.store.log_batch(run.info.run_id, tags=[(slurm_jobs.TAG_STATE, "CANCELLED"),
                                               (slurm_jobs.TAG_REASON, "cancelled from the web UI")])
    if run.info.status not in slurm_jobs.ENDED:
        ctx.store.update_run(run.info.run_id, status="KILLED", end_time=int(time.time() * 1000))
    return {"job_id": job}


LABTRACK_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("jobs/logs", {"GET": job_logs}),
    ("jobs/cancel", {"POST": cancel_job}),
]

"""The server follows the SLURM jobs of unfinished runs, so none stays RUNNING after its job.

``labtrack run --backend slurm`` follows its jobs while it runs; this covers
``--detach`` and a closed terminal.  Every ``interval`` seconds, where a
scheduler is installed, it finds the runs that carry a job id and have not
ended, asks the scheduler once per array, and applies ``slurm_jobs.decide``
through the store (and so through the one writer).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from labtrack import slurm_jobs
from labtrack.thread_names import name_os_thread

log = logging.getLogger("labtrack.server")

_OPEN = (f"tags.`{slurm_jobs.TAG_JOB}` LIKE '%' and attributes.status != 'FINISHED' "
         "and attributes.status != 'FAILED' and attributes.status != 'KILLED'")


class JobWatch:
    def __init__(self, store: Any, interval: float = 10.0) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labtrack-jobs", daemon=True)

    def start(self) -> JobWatch:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> int:
        """One pass; returns how many runs changed."""
        ids: list[str] = []
        token = None
        while True:
            page, token = self.store.search_experiments("ACTIVE_ONLY", 1000, page_token=token)
            ids += [e.experiment_id for e in page]
            if not token:
                break
        if not ids:
            return 0
        runs, _ = self.store.search_runs(ids, _OPEN, "ACTIVE_ONLY", 1000)
        arrays: dict[str, dict[str, slurm_jobs.TaskState]] = {}
        changed = 0
        for run in runs:
            job = run.tags.get(slurm_jobs.TAG_JOB, "")
            array = job.split("_")[0]
            if array not in arrays:
                arrays[array] = slurm_jobs.query(array)
            change = slurm_jobs.decide(run.info.status, run.tags, arrays[array].get(job))
            if change.tags:
                self.store.log_batch(run.info.run_id, tags=list(change.tags.items()))
            if change.status is not None:
                end = int(time.time() * 1000) if change.status in slurm_jobs.ENDED else None
                self.store.update_run(run.info.run_id, status=change.status, end_time=end)
                changed += 1
        return changed

    def _run(self) -> None:
        name_os_thread()
        last_trace = -1e9
        while not self._stop.wait(self.interval):
            try:
                if self.run_once():
                    log.info("runs brought in line with their SLURM jobs")
            except Exception as e:  # noqa: BLE001 - a scheduler hiccup must not end the watch
                if time.monotonic() - last_trace > 600:
                    last_trace = time.monotonic()
                    log.warning("following SLURM jobs failed (%s); retrying", type(e).__name__)


def start_job_watch(store: Any) -> JobWatch | None:
    """A running watch where a SLURM scheduler is installed, else None."""
    return JobWatch(store).start() if slurm_jobs.available() else None

"""SLURM context as tags: a run started inside a job (the environment ``sbatch`` sets) is tagged
with its job, array, nodes, partition and resources, and an array's tasks are found by its id."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import labtrack as lt
from labtrack.client.slurm_tags import slurm_tags
from tests.client.conftest import TrackingServer
from tests.client_state import reset_client_state
from tests.training.conftest import child_env

# What sbatch --array=0-1 --partition=gpu --gres=gpu:2 -c 8 -J sweep puts into a task's environment
SBATCH_ENV = {
    "SLURM_JOB_ID": "4242", "SLURM_JOBID": "4242", "SLURM_ARRAY_JOB_ID": "4240",
    "SLURM_JOB_NAME": "sweep", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_NODELIST": "gpu[01-02]",
    "SLURM_JOB_PARTITION": "gpu", "SLURM_CPUS_ON_NODE": "8", "SLURM_JOB_CPUS_PER_NODE": "8",
    "SLURM_GPUS_ON_NODE": "2", "SLURM_JOB_GPUS": "0,1", "SLURM_JOB_NUM_NODES": "2",
    "SLURM_CLUSTER_NAME": "hpc", "SLURM_JOB_ACCOUNT": "lab", "SLURM_SUBMIT_DIR": "/home/u",
}


def test_no_slurm_no_tags() -> None:
    assert slurm_tags({"HOME": "/root"}) == {}


def test_array_tasks_are_tagged_and_found_by_array_id(lt_server: TrackingServer, tmp_path: Path) -> None:
    script = tmp_path / "task.py"
    script.write_text("import labtrack as lt\nlt.set_experiment('slurm-array')\n"
                      "with lt.start_run():\n    lt.log_metric('loss', 1.0)\n")
    for task in ("0", "1"):
        env = child_env(lt_server)
        env.update(SBATCH_ENV, SLURM_ARRAY_TASK_ID=task, SLURM_JOB_ID=f"424{task}",
                   SLURM_JOBID=f"424{task}")
        done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
    reset_client_state()
    try:
        if lt_server.token:
            import os

            os.environ["LABTRACK_TRACKING_TOKEN"] = lt_server.token
        lt.set_tracking_uri(lt_server.uri)
        lt.set_experiment("slurm-array")
        runs = lt.search_runs(filter_string="tags.`slurm.array_job_id` = '4240'")
        assert sorted(r.data.tags["slurm.array_task_id"] for r in runs) == ["0", "1"]
        tags = next(r for r in runs if r.data.tags["slurm.array_task_id"] == "1").data.tags
        assert tags["slurm.job_id"] == "4241"
        assert tags["slurm.nodelist"] == "gpu[01-02]" and tags["slurm.partition"] == "gpu"
        assert tags["slurm.cpus"] == "8" and tags["slurm.gpus"] == "2"
        assert tags["slurm.job_name"] == "sweep" and tags["slurm.num_nodes"] == "2"
    finally:
        reset_client_state()

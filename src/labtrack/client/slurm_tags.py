"""SLURM context as run tags: which job, array task, nodes, partition and resources a run had.

``sbatch``/``srun`` describe the allocation in ``SLURM_*`` environment
variables; a run started inside a job records them as ``slurm.*`` tags, so a
run can be traced back to its job and every task of an array found by
``tags.`slurm.array_job_id` = '<id>'``.
"""

from __future__ import annotations

import os

JOB_ID = "slurm.job_id"
ARRAY_JOB_ID = "slurm.array_job_id"
ARRAY_TASK_ID = "slurm.array_task_id"
JOB_NAME = "slurm.job_name"
NODELIST = "slurm.nodelist"
PARTITION = "slurm.partition"
CPUS = "slurm.cpus"
GPUS = "slurm.gpus"
CLUSTER = "slurm.cluster"
ACCOUNT = "slurm.account"
NUM_NODES = "slurm.num_nodes"
STEP_ID = "slurm.step_id"

# tag <- the first of these variables that is set (newer names first, older fall back)
_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (JOB_ID, ("SLURM_JOB_ID", "SLURM_JOBID")),
    (ARRAY_JOB_ID, ("SLURM_ARRAY_JOB_ID",)),
    (ARRAY_TASK_ID, ("SLURM_ARRAY_TASK_ID",)),
    (JOB_NAME, ("SLURM_JOB_NAME",)),
    (NODELIST, ("SLURM_JOB_NODELIST", "SLURM_NODELIST")),
    (PARTITION, ("SLURM_JOB_PARTITION",)),
    (NUM_NODES, ("SLURM_JOB_NUM_NODES", "SLURM_NNODES")),
    (CPUS, ("SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE")),
    (GPUS, ("SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_GPUS", "SLURM_STEP_GPUS")),
    (CLUSTER, ("SLURM_CLUSTER_NAME",)),
    (ACCOUNT, ("SLURM_JOB_ACCOUNT",)),
    (STEP_ID, ("SLURM_STEP_ID",)),
)


def slurm_tags(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The ``slurm.*`` tags of this process's job; empty outside SLURM."""
    env = os.environ if environ is None else environ
    if not (env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")):
        return {}
    tags: dict[str, str] = {}
    for tag, names in _SOURCES:
        for name in names:
            value = env.get(name)
            if value:
                tags[tag] = value
                break
    return tags

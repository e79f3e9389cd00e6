"""A recipe run step by step through SLURM: each step that must run is one job, in order.

The login node creates the recipe's parent run and checks the cache; each job
runs ``labtrack recipes run --step S --only`` in the recipe folder (a shared
filesystem on a cluster), logging its child run through the server or the spool.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Callable

from labtrack.recipes.recipe import STEPS, Recipe, RecipeError
from labtrack.recipes.runner import TAG_RECIPE, StepResult, _key, _load


def run_on_slurm(recipe: Recipe, until: str | None, config_path: str | None,
                 echo: Callable[[str], None] = print) -> list[StepResult]:
    import labtrack as lt
    from labtrack.client.client import Client
    from labtrack.projects.runner import tracking_env
    from labtrack.projects.slurm import SlurmConfig, require_slurm

    require_slurm()
    config = SlurmConfig.load(config_path)
    last = STEPS.index(until) if until else len(STEPS) - 1
    results: list[StepResult] = []
    upstream = ""
    parent: str | None = None
    env_lines = [f"export {k}={shlex.quote(v)}" for k, v in tracking_env(Client(), batch=True).items()]
    for step in STEPS[:last + 1]:
        key = _key(recipe, step, upstream)
        upstream = key
        if _load(recipe, step, key) is not None:
            results.append(StepResult(step, True))
            echo(f"{step}: cached")
            continue
        if parent is None:
            lt.set_experiment(recipe.experiment)
            with lt.start_run(run_name=f"recipe {recipe.folder.name}",
                              tags={TAG_RECIPE: recipe.kind, "labtrack.recipe.backend": "slurm"}) as run:
                parent = run.info.run_id
            lt.flush()
        cmd = [sys.executable, "-m", "labtrack", "recipes", "run", "--step", step, "--only",
               "--dir", str(recipe.folder), "--parent-run-id", parent]
        if recipe.profile:
            cmd += ["--profile", recipe.profile]
        command = " ".join(shlex.quote(c) for c in cmd)
        if config.launcher:
            command = f"{config.launcher} bash -c {shlex.quote(command)}"
        script = "\n".join(["#!/bin/bash", f"#SBATCH --job-name=recipe-{step}",
                            f"#SBATCH --output={recipe.folder}/.labtrack-recipe/slurm-{step}-%j.out",
                            *config.sbatch_lines(), "set -e", "unset MLFLOW_RUN_ID MLFLOW_TRACKING_URI",
                            *env_lines, *config.setup, f"cd {shlex.quote(str(recipe.folder))}", command]) + "\n"
        (recipe.folder / ".labtrack-recipe").mkdir(exist_ok=True)
        proc = subprocess.run(["sbatch", "--wait", "--parsable"], input=script, capture_output=True, text=True)
        job = proc.stdout.strip().split(";")[0]
        if proc.returncode:
            raise RecipeError(f"step {step} (SLURM job {job or '?'}) failed: "
                              f"{(proc.stderr.strip() or 'see its .out file').splitlines()[-1]}")
        results.append(StepResult(step, False))
        echo(f"{step}: ran as SLURM job {job}")
    return results

"""``labtrack recipes init|run``: structured ML projects with cached, tracked steps."""

from __future__ import annotations

import sys

import click

from labtrack.errors import LabtrackError


@click.group("recipes")
def recipes() -> None:
    """Recipes: ingest, split, transform, train, evaluate and register as cached, tracked steps."""


@recipes.command("init")
@click.argument("kind", type=click.Choice(["classification", "regression"]))
@click.argument("folder", default=".")
def recipes_init(kind: str, folder: str) -> None:
    """Write a KIND recipe (recipe.yaml and steps/*.py) into FOLDER."""
    from labtrack.recipes.recipe import init

    try:
        target = init(kind, folder)
    except LabtrackError as err:
        click.echo(f"labtrack: {err.message}", err=True)
        sys.exit(2)
    click.echo(f"labtrack: wrote a {kind} recipe in {target}; run it with `labtrack recipes run`")


@recipes.command("run")
@click.option("--step", "-s", default=None, help="Run up to this step (and what it needs).")
@click.option("--only", is_flag=True, hidden=True, help="Run just --step (its inputs must be cached).")
@click.option("--profile", "-p", default=None, help="A profile of recipe.yaml to apply.")
@click.option("--dir", "-d", "folder", default=".", help="The recipe's folder.")
@click.option("--parent-run-id", default=None, hidden=True)
@click.option("--backend", "-b", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
              help="slurm: each step that must run is a SLURM job, one after the other.")
@click.option("--backend-config", "-c", default=None, help="SLURM settings (as for `labtrack run`).")
def recipes_run(step: str | None, only: bool, profile: str | None, folder: str,
                parent_run_id: str | None, backend: str, backend_config: str | None) -> None:
    """Run the recipe's steps; a step whose code, settings and inputs did not change is not re-run."""
    from labtrack.recipes import recipe as recipe_mod

    try:
        recipe = recipe_mod.load(folder, profile)
        if backend == "slurm":
            from labtrack.recipes.slurm_steps import run_on_slurm

            results = run_on_slurm(recipe, step, backend_config, echo=click.echo)
        else:
            from labtrack.recipes.runner import run

            results = run(recipe, step, only=only, parent_run_id=parent_run_id, echo=click.echo)
    except LabtrackError as err:
        click.echo(f"labtrack: {err.message}", err=True)
        sys.exit(2)
    ran = [r.step for r in results if not r.cached]
    click.echo(f"labtrack: {len(ran)} step(s) ran" + (f" ({', '.join(ran)})" if ran else "")
               + f", {len(results) - len(ran)} cached")

"""``labtrack run`` (MLproject entry points, locally or on SLURM) and ``labtrack jobs``."""

from __future__ import annotations

import sys
from typing import Any

import click

from labtrack.errors import LabtrackError


def _fail(err: Exception) -> None:
    click.echo(f"labtrack: {getattr(err, 'message', None) or err}", err=True)
    sys.exit(2)


def _parameters(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-P")
        out[key] = value
    return out


@click.command("run", context_settings={"help_option_names": ["--help"]})
@click.argument("uri")
@click.option("--entry-point", "-e", default="main", show_default=True, help="Entry point to run.")
@click.option("--param-list", "-P", "params", multiple=True, metavar="KEY=VALUE",
              help="A parameter; with --backend slurm, comma-separated values make a grid (one task each).")
@click.option("--version", "-v", default=None, help="Git commit, branch or tag (Git URIs).")
@click.option("--experiment-name", default=None, help="Experiment to run in (created if new).")
@click.option("--experiment-id", default=None, help="Experiment id to run in.")
@click.option("--run-name", default=None, help="Name of the run (or of the sweep's parent run).")
@click.option("--env-manager", type=click.Choice(["local", "virtualenv", "uv", "conda"]), default=None,
              help="How to build the project's Python environment [default: virtualenv when the "
                   "project declares one, else local].")
@click.option("--backend", "-b", type=click.Choice(["local", "slurm"]), default="local", show_default=True)
@click.option("--backend-config", "-c", default=None, help="YAML file of backend settings (SLURM: "
              "partition, time, cpus, gpus, mem, account, qos, max_parallel, extra, setup, launcher).")
@click.option("--sweep", default=None, help="YAML sweep file (grid: or runs:) for --backend slurm.")
@click.option("--detach", is_flag=True, help="Submit and return at once (SLURM); `labtrack jobs` follows later.")
def run_command(uri: str, entry_point: str, params: tuple[str, ...], version: str | None,
                experiment_name: str | None, experiment_id: str | None, run_name: str | None,
                env_manager: str | None, backend: str, backend_config: str | None, sweep: str | None,
                detach: bool) -> None:
    """Run an MLproject's entry point as a tracked run (URI: a folder, or a Git URL[#subdir])."""
    from labtrack.client.client import Client
    from labtrack.projects import runner

    try:
        parameters = _parameters(params)
        grid_params = {k: v for k, v in parameters.items() if "," in v} if backend == "slurm" else {}
        fixed = {k: v for k, v in parameters.items() if k not in grid_params}
        launch = runner.Launch.resolve(uri, entry_point, fixed, version, env_manager)
        client = Client()
        experiment = runner.experiment_id(client, experiment_name, experiment_id)
        if backend == "local":
            run_id, status = runner.run_local(launch, client, experiment, run_name)
            click.echo(f"labtrack: run {run_id} {status}")
            sys.exit(0 if status == "FINISHED" else 1)
        from labtrack.projects import slurm

        config = slurm.SlurmConfig.load(backend_config)
        grid = slurm.load_sweep(sweep) if sweep else []
        if grid_params:
            extra = slurm.expand_grid(grid_params)
            grid = [{**g, **e} for g in grid for e in extra] if grid else extra
        submitted = slurm.submit(launch, client, experiment, grid, config, run_name)
        parent = f" under parent run {submitted.parent_run_id}" if submitted.parent_run_id else ""
        click.echo(f"labtrack: submitted job {submitted.array_job_id} with {len(submitted.runs)} "
                   f"task(s){parent}; job files in {submitted.folder}")
        if detach:
            return
        statuses = slurm.follow(client, submitted, config.poll_interval, echo=click.echo)
        failed = sum(1 for s in statuses.values() if s != "FINISHED")
        click.echo(f"labtrack: job {submitted.array_job_id}: {len(statuses) - failed} finished, {failed} not")
        sys.exit(0 if failed == 0 else 1)
    except LabtrackError as err:
        _fail(err)
    except KeyboardInterrupt:
        click.echo("labtrack: interrupted", err=True)
        sys.exit(130)


@click.group("jobs", invoke_without_command=True)
@click.option("--experiment-name", default=None, help="Only this experiment's runs.")
@click.option("--all", "show_all", is_flag=True, help="Also jobs whose runs ended.")
@click.pass_context
def jobs(ctx: click.Context, experiment_name: str | None, show_all: bool) -> None:
    """List the SLURM jobs of labtrack runs, bringing each run's status in line with its job."""
    if ctx.invoked_subcommand is not None:
        return
    from labtrack.client.client import Client
    from labtrack.projects import slurm

    try:
        client = Client()
        if experiment_name:
            exp = client.get_experiment_by_name(experiment_name)
            if exp is None:
                raise LabtrackError(f"no experiment named {experiment_name!r}", "RESOURCE_DOES_NOT_EXIST")
            experiments = [exp.experiment_id]
        else:
            experiments = [e.experiment_id for e in client.search_experiments()]
        filt = f"tags.`{slurm.TAG_JOB}` != ''"
        if not show_all:
            filt += " and attributes.status != 'FINISHED' and attributes.status != 'FAILED'" \
                    " and attributes.status != 'KILLED'"
        runs = list(client.search_runs(experiments, filt, max_results=1000)) if experiments else []
        states: dict[str, Any] = {}
        rows = []
        for run in runs:
            array = run.tags.get(slurm.TAG_ARRAY_JOB, "")
            if array and array not in states:
                states[array] = slurm.query(array)
            task = states.get(array, {}).get(run.tags.get(slurm.TAG_JOB, ""))
            status = slurm.reconcile(client, run.info.run_id, task) or run.info.status
            rows.append((run.tags.get(slurm.TAG_JOB, ""), task.state if task else "(gone)",
                         status, task.node if task else run.tags.get(slurm.TAG_NODE, ""),
                         run.info.run_id, run.info.run_name))
        if not rows:
            click.echo("labtrack: no SLURM jobs" + ("" if show_all else " still running (--all shows ended ones)"))
            return
        header = ("JOB", "STATE", "RUN STATUS", "NODE", "RUN ID", "RUN NAME")
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    except LabtrackError as err:
        _fail(err)


@jobs.command("cancel")
@click.argument("run_id")
def jobs_cancel(run_id: str) -> None:
    """Cancel the SLURM job of RUN_ID (scancel); the run ends KILLED."""
    from labtrack.client.client import Client
    from labtrack.projects import slurm

    try:
        job = slurm.cancel(Client(), run_id)
    except LabtrackError as err:
        _fail(err)
    click.echo(f"labtrack: cancelled job {job}; run {run_id} KILLED")

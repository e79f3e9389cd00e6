"""Terminal commands for people on SSH without a browser.

``labtrack experiments list``, ``labtrack runs list`` (filter, order,
columns), ``labtrack runs describe`` and ``labtrack artifacts list|download``
print plain aligned tables (or JSON with ``--json``).  They speak MLflow's
REST API through ``lt.Client``, so they work against an MLflow server too.
"""

from __future__ import annotations

import json
from typing import Any

import click

from labtrack.commands.table import duration, render, when
from labtrack.commands.tracking import fails_in_one_line, tracking_client, tracking_uri_option

VIEWS = {"active": "ACTIVE_ONLY", "deleted": "DELETED_ONLY", "all": "ALL"}
DEFAULT_COLUMNS = "run_id,run_name,status,start_time,duration,metrics.*,params.*"
# How many metrics.* / params.* columns the default shows (name them to see more).
EXPANDED_LIMIT = 6
_view_option = click.option("--view", type=click.Choice(sorted(VIEWS)), default="active",
                            show_default=True, help="Which lifecycle stage to list.")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


# -- experiments -------------------------------------------------------------------

@click.group("experiments")
def experiments() -> None:
    """List the tracking server's experiments."""


@experiments.command("list")
@tracking_uri_option
@_view_option
@_json_option
@fails_in_one_line
def experiments_list(tracking_uri: str | None, view: str, as_json: bool) -> None:
    """Print the experiments (id, name, stage, times, artifact location)."""
    from labtrack.client.push import all_pages

    client = tracking_client(tracking_uri)
    found = list(all_pages(lambda t: client.search_experiments(
        view_type=VIEWS[view], max_results=1000, page_token=t)))
    if as_json:
        _echo_json([e.to_json() for e in found])
        return
    rows = [(e.experiment_id, e.name, e.lifecycle_stage, when(e.creation_time),
             when(e.last_update_time), e.artifact_location) for e in found]
    click.echo(render(("ID", "NAME", "STAGE", "CREATED", "UPDATED", "ARTIFACT LOCATION"), rows))


# -- runs --------------------------------------------------------------------------

@click.group("runs")
def runs() -> None:
    """List and describe runs."""


def _experiment_ids(client: Any, refs: tuple[str, ...]) -> list[str]:
    """Experiment ids for names or ids; every active experiment when none is given."""
    from labtrack.client.push import select_experiments

    return [e.experiment_id for e in select_experiments(client, refs)]


def _columns(spec: str, found: list[Any]) -> list[str]:
    """The column names of ``spec``, with ``metrics.*``/``params.*``/``tags.*`` expanded."""
    out: list[str] = []
    for name in (c.strip() for c in spec.split(",")):
        if not name:
            continue
        if name in ("metrics.*", "params.*", "tags.*"):
            kind = name[:-2]
            keys = sorted({k for run in found for k in getattr(run, kind)
                           if not (kind == "tags" and k.startswith("mlflow."))})
            if spec == DEFAULT_COLUMNS:
                keys = keys[:EXPANDED_LIMIT]
            out += [f"{kind}.{k}" for k in keys]
        else:
            out.append(name)
    return out


_INFO_COLUMNS = {
    "run_id": lambda r: r.info.run_id,
    "run_name": lambda r: r.info.run_name,
    "name": lambda r: r.info.run_name,
    "status": lambda r: r.info.status,
    "user": lambda r: r.info.user_id,
    "experiment_id": lambda r: r.info.experiment_id,
    "start_time": lambda r: when(r.info.start_time),
    "end_time": lambda r: when(r.info.end_time),
    "duration": lambda r: duration(r.info.start_time, r.info.end_time),
    "lifecycle_stage": lambda r: r.info.lifecycle_stage,
    "artifact_uri": lambda r: r.info.artifact_uri,
    "parent": lambda r: r.tags.get("mlflow.parentRunId", ""),
}


def _value(run: Any, column: str) -> Any:
    if column in _INFO_COLUMNS:
        return _INFO_COLUMNS[column](run)
    kind, _, key = column.partition(".")
    if kind in ("metric", "metrics"):
        m = run.metrics.get(key)
        return None if m is None else float(m.value)
    if kind in ("param", "params"):
        return run.params.get(key)
    if kind in ("tag", "tags"):
        return run.tags.get(key)
    raise click.BadParameter(
        f"unknown column {column!r}: use {', '.join(sorted(_INFO_COLUMNS))}, metrics.<key>, "
        "params.<key>, tags.<key> or metrics.* / params.* / tags.*", param_hint="--columns")


@runs.command("list")
@click.option("--experiment", "-e", "experiment_refs", multiple=True, metavar="NAME_OR_ID",
              help="An experiment (repeatable) [default: every active experiment].")
@click.option("--filter", "filter_string", default="", metavar="FILTER",
              help="An MLflow search filter, e.g. \"metrics.acc > 0.9 and params.lr = '0.1'\".")
@click.option("--order-by", multiple=True, metavar="EXPR",
              help="Sort, e.g. \"metrics.acc DESC\" (repeatable) [default: newest first].")
@click.option("--columns", default=DEFAULT_COLUMNS, show_default=True,
              help="Comma-separated columns: run_id, run_name, status, user, start_time, end_time, "
                   "duration, parent, experiment_id, metrics.<key>, params.<key>, tags.<key>, "
                   "metrics.*, params.*, tags.*.")
@click.option("--max-results", type=click.IntRange(1, 50000), default=100, show_default=True)
@_view_option
@tracking_uri_option
@_json_option
@fails_in_one_line
def runs_list(experiment_refs: tuple[str, ...], filter_string: str, order_by: tuple[str, ...],
              columns: str, max_results: int, view: str, tracking_uri: str | None,
              as_json: bool) -> None:
    """Print runs as a table, one row each."""
    client = tracking_client(tracking_uri)
    ids = _experiment_ids(client, experiment_refs)
    found: list[Any] = []
    token: str | None = None
    while ids and len(found) < max_results:
        page = client.search_runs(ids, filter_string, run_view_type=VIEWS[view],
                                  max_results=min(1000, max_results - len(found)),
                                  order_by=list(order_by) or None, page_token=token)
        found += page
        token = page.token
        if not token:
            break
    names = _columns(columns, found)
    rows = [[_value(run, c) for c in names] for run in found]
    if as_json:
        _echo_json([dict(zip(names, row)) for row in rows])
        return
    click.echo(render([c.upper() if "." not in c else c for c in names], rows))
    click.echo(f"({len(found)} runs)", err=True)


@runs.command("describe")
@click.argument("run_id")
@click.option("--all-tags", is_flag=True, help="Show mlflow.* system tags too.")
@tracking_uri_option
@_json_option
@fails_in_one_line
def runs_describe(run_id: str, all_tags: bool, tracking_uri: str | None, as_json: bool) -> None:
    """Print one run: its info, params, latest metrics, tags, inputs and artifacts."""
    client = tracking_client(tracking_uri)
    run = client.get_run(run_id)
    if as_json:
        _echo_json(run.to_json())
        return
    info = run.info
    exp = client.get_experiment(info.experiment_id)
    pairs = [("Run ID", info.run_id), ("Name", info.run_name),
             ("Experiment", f"{exp.name} (id {info.experiment_id})"), ("Status", info.status),
             ("Lifecycle", info.lifecycle_stage), ("User", info.user_id),
             ("Started", when(info.start_time)), ("Ended", when(info.end_time)),
             ("Duration", duration(info.start_time, info.end_time)),
             ("Parent run", run.tags.get("mlflow.parentRunId", "")),
             ("Artifact URI", info.artifact_uri)]
    width = max(len(k) for k, _ in pairs)
    click.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs if v not in ("", None)))
    sections = [
        ("Params", ("KEY", "VALUE"), sorted(run.params.items())),
        ("Metrics (latest)", ("KEY", "VALUE", "STEP", "TIME"),
         [(k, float(m.value), m.step, when(m.timestamp)) for k, m in sorted(run.metrics.items())]),
        ("Tags", ("KEY", "VALUE"), sorted((k, v) for k, v in run.tags.items()
                                          if all_tags or not k.startswith("mlflow."))),
        ("Dataset inputs", ("NAME", "DIGEST", "SOURCE TYPE", "CONTEXT"),
         [(d.name, d.digest, d.source_type, d.tags.get("mlflow.data.context", ""))
          for d in run.dataset_inputs]),
    ]
    try:
        files = client.list_artifacts(run_id)
        sections.append(("Artifacts", ("PATH", "SIZE"),
                         [(f.path + ("/" if f.is_dir else ""), "" if f.is_dir else f.file_size)
                          for f in files]))
    except Exception as exc:  # an unreachable artifact store must not hide the rest
        sections.append(("Artifacts", ("ERROR",), [(str(exc),)]))
    for title, headers, rows in sections:
        if rows:
            click.echo(f"\n{title}:")
            click.echo(render(headers, rows))


# -- artifacts ---------------------------------------------------------------------

@click.group("artifacts")
def artifacts() -> None:
    """List and download a run's artifacts."""


@artifacts.command("list")
@click.option("--run-id", "-r", required=True)
@click.option("--artifact-path", "-a", default="", help="A folder inside the run's artifacts.")
@tracking_uri_option
@fails_in_one_line
def artifacts_list(run_id: str, artifact_path: str, tracking_uri: str | None) -> None:
    """Print the files and folders directly under a path of the run's artifacts."""
    client = tracking_client(tracking_uri)
    files = client.list_artifacts(run_id, artifact_path or None)
    click.echo(render(("PATH", "SIZE"), [(f.path + ("/" if f.is_dir else ""),
                                          "" if f.is_dir else f.file_size) for f in files]))


@artifacts.command("download")
@click.option("--run-id", "-r", required=True)
@click.option("--artifact-path", "-a", default="",
              help="A file or folder inside the run's artifacts [default: all of them].")
@click.option("--dst", "--dst-path", "-d", "dst", default=".", show_default=True,
              type=click.Path(file_okay=False), help="The local folder to download into.")
@tracking_uri_option
@fails_in_one_line
def artifacts_download(run_id: str, artifact_path: str, dst: str, tracking_uri: str | None) -> None:
    """Download a run's artifacts (a file or a folder); print where they went."""
    client = tracking_client(tracking_uri)
    click.echo(client.download_artifacts(run_id, artifact_path, dst))


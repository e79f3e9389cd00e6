"""``labtrack push --to URI``: publish runs to another MLflow-compatible server."""

from __future__ import annotations

import sys
from typing import Any

import click

from labtrack.commands.tracking import fails_in_one_line, tracking_client


@click.command("push")
@click.option("--to", "to", required=True, metavar="URI",
              help="The destination server (an MLflow or labtrack server URL). Its credentials "
                   "come from MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
                   "MLFLOW_TRACKING_PASSWORD, as for the mlflow client.")
@click.option("--from", "source", default=None, metavar="URI",
              help="The source server [default: LABTRACK_TRACKING_URI, MLFLOW_TRACKING_URI, "
                   "./mlruns.db]; LABTRACK_TRACKING_TOKEN is its token.")
@click.option("--experiment", "-e", "experiments", multiple=True, metavar="NAME_OR_ID",
              help="An experiment to push (repeatable) [default: every active experiment].")
@click.option("--filter", "filter_string", default="", metavar="FILTER",
              help="Only runs matching this MLflow search filter, e.g. \"metrics.acc > 0.9\".")
@fails_in_one_line
def push(to: str, source: str | None, experiments: tuple[str, ...], filter_string: str) -> None:
    """Copy runs, with their metrics, artifacts, models, traces, prompts, evaluation datasets and
    registered scorers, to the server at URI.

    Safe to repeat: each copied run carries the tag labtrack.push.source_run_id,
    so a second push adds only what is new.
    """
    from labtrack.client.push import destination_client
    from labtrack.client.push import push as push_runs
    from labtrack.errors import LabtrackError

    src = tracking_client(source)
    dest = destination_client(to)
    if src.tracking_uri.rstrip("/") == dest.tracking_uri.rstrip("/"):
        raise LabtrackError("the source and the destination are the same server",
                            "INVALID_PARAMETER_VALUE")
    report = push_runs(src, dest, experiments, filter_string, progress=_bar)
    for warning in report.warnings:
        click.echo(f"labtrack: {warning}", err=True)
    click.echo(f"labtrack: {report.summary(dest.tracking_uri)}")


def _bar(total: int) -> Any:
    return click.progressbar(length=max(total, 1), label="pushing runs", file=sys.stderr,
                             show_eta=False, show_pos=True)

"""``labtrack import SOURCE``: bring MLflow data into labtrack (see labtrack.imports)."""

from __future__ import annotations

import sys
from typing import Any

import click

from labtrack.errors import LabtrackError


@click.command("import")
@click.argument("source")
@click.option("--to", "target", default=None, type=click.Path(dir_okay=False),
              help="The labtrack database to write [default: labtrack.db beside a local MLflow source, "
                   "else ./mlruns.db].")
@click.option("--artifacts-destination", default=None, type=click.Path(file_okay=False),
              help="Where labtrack keeps the copied artifacts [default: the folder named after the "
                   "database, e.g. labtrack/ beside labtrack.db].")
@click.option("--source-artifacts", default=None, type=click.Path(file_okay=False),
              help="The MLflow server's --artifacts-destination, for mlflow-artifacts:/ URIs "
                   "[default: mlartifacts/ beside the MLflow database].")
def import_command(source: str, target: str | None, artifacts_destination: str | None,
                   source_artifacts: str | None) -> None:
    """Copy MLflow's runs, metrics, models and artifacts from SOURCE into labtrack.

    SOURCE is an MLflow database (an SQLite file such as mlflow.db or mlruns.db, or any
    SQLAlchemy URL), an MLflow file store folder (./mlruns), or a running MLflow
    server (http://...).  SOURCE is only read, never changed.  Importing again copies
    only what MLflow logged since.
    """
    from pathlib import Path

    from labtrack.imports.importer import default_target, import_mlflow, open_source

    try:
        src = open_source(source, source_artifacts)
    except LabtrackError as e:
        click.echo(f"labtrack: {e.message}", err=True)
        sys.exit(2)
    try:
        db = Path(target).expanduser().resolve() if target else default_target(src)
        click.echo(f"labtrack: importing {src.describe()} into {db}", err=True)
        summary = import_mlflow(src, db, artifacts=artifacts_destination, progress=_progress_bar)
    except LabtrackError as e:
        click.echo(f"labtrack: {e.message}", err=True)
        sys.exit(1)
    finally:
        src.close()
    for line in summary.lines():
        click.echo(line)
    click.echo(f"labtrack: serve it with `labtrack server --backend-store-uri sqlite:///{db}"
               f"{_artifacts_flag(db, artifacts_destination)}`")


def _artifacts_flag(db: Any, artifacts: str | None) -> str:
    from pathlib import Path

    from labtrack.mlflow_data import artifacts_folder

    folder = Path(artifacts).resolve() if artifacts else artifacts_folder(db)
    return f" --artifacts-destination {folder}"


def _progress_bar(total: int) -> Any:
    return click.progressbar(length=max(total, 1), label="importing runs", file=sys.stderr,
                             show_eta=True, show_percent=True)

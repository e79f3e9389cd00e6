"""``labtrack tui``: the terminal viewer (needs the ``tui`` extra: Textual)."""

from __future__ import annotations

import sys

import click


@click.command("tui")
@click.option("--tracking-uri", default=None, help="A labtrack or MLflow server [default: as lt finds it].")
@click.option("--experiment", "-e", default=None, help="Open this experiment (name or id).")
def tui(tracking_uri: str | None, experiment: str | None) -> None:
    """Browse experiments, runs and metric sparklines in the terminal (keys: / filter, s sort, r refresh, q quit)."""
    try:
        import textual  # noqa: F401
    except ImportError:
        click.echo("labtrack: labtrack tui needs Textual: pip install 'labtrack[tui]'", err=True)
        sys.exit(2)
    from labtrack.errors import LabtrackError
    from labtrack.tui.app import run_tui

    try:
        run_tui(tracking_uri, experiment)
    except LabtrackError as err:
        click.echo(f"labtrack: {err.message}", err=True)
        sys.exit(2)

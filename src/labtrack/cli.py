"""``labtrack`` command line: flags -> Settings -> the part that does the work.

Errors a user can fix (a database already served, a bad flag) end in one
line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from labtrack._version import __version__
from labtrack.errors import LabtrackError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labtrack")
def main() -> None:
    """labtrack: experiment tracking that speaks MLflow's REST API."""


def _server_options(fn: Any) -> Any:
    opts = [
        click.option("--backend-store-uri", default=None,
                     help="SQLAlchemy URL of the database [default: sqlite:///mlruns.db]."),
        click.option("--artifacts-destination", default=None,
                     help="Folder for artifacts the server serves [default: ./mlruns]."),
        click.option("--default-artifact-root", default=None,
                     help="Artifact location of new experiments [default: mlflow-artifacts:/]."),
        click.option("--serve-artifacts/--no-serve-artifacts", default=None,
                     help="Proxy artifact uploads and downloads [default: on]."),
        click.option("--host", "-h", default=None, help="TCP address [default: 127.0.0.1]."),
        click.option("--port", "-p", type=int, default=None, help="TCP port; 0 picks a free one [default: 5000]."),
        click.option("--unix-socket", default=None, help="Listen on this unix socket instead of TCP."),
        click.option("--token", default=None, help="Token TCP clients must send [default: a new random one]."),
        click.option("--no-token", is_flag=True, default=None,
                     help="Serve TCP without a token (anyone on this host can read and write)."),
        click.option("--idle-timeout", type=int, default=None, help="Exit after this many idle seconds."),
        click.option("--parent-pid", type=int, default=None, help="Exit when this process exits."),
        click.option("--static-prefix", default=None, help="Public path prefix behind a proxy."),
        click.option("--access-log", is_flag=True, default=None, help="Log every request (method, path, status)."),
        click.option("--log-file", default=None, help="Log to this file, rotated at 5 MB [default: stderr]."),
        click.option("--gateway-config", default=None, help="gateway.yaml: the AI gateway's endpoints."),
        # mlflow server's flags: a Settings field each (settings.py says which are built yet).
        click.option("--workers", "-w", type=int, default=None,
                     help="Server processes sharing one PostgreSQL database [default: 1]."),
        click.option("--app-name", default=None, help="'basic-auth': users and permissions, as in MLflow."),
        click.option("--allowed-hosts", default=None, help="Comma-separated Host headers to answer."),
        click.option("--cors-allowed-origins", default=None, help="Comma-separated browser origins allowed."),
        click.option("--expose-prometheus", default=None, help="Folder for Prometheus metrics (/metrics)."),
        # mlflow server's flags with no labtrack counterpart: refused with the equivalent.
        click.option("--registry-store-uri", default=None, hidden=True),
        click.option("--artifacts-only", is_flag=True, default=None, hidden=True),
        click.option("--gunicorn-opts", default=None, hidden=True),
        click.option("--uvicorn-opts", default=None, hidden=True),
        click.option("--waitress-opts", default=None, hidden=True),
        click.option("--dev", is_flag=True, default=None, hidden=True),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


# mlflow server's flags that labtrack has no use for: each is refused with one line that
# names what labtrack does instead.
_MLFLOW_ONLY_FLAGS: dict[str, str] = {
    "registry_store_uri": "--registry-store-uri: labtrack keeps the model registry in the "
                          "--backend-store-uri database; drop the flag",
    "artifacts_only": "--artifacts-only: labtrack serves artifacts with tracking; use "
                      "--artifacts-destination DIR (and --no-serve-artifacts on other servers)",
    "gunicorn_opts": "--gunicorn-opts: labtrack runs no gunicorn; use --workers and --access-log",
    "uvicorn_opts": "--uvicorn-opts: labtrack runs no uvicorn; use --workers and --access-log",
    "waitress_opts": "--waitress-opts: labtrack runs no waitress; use --workers and --access-log",
    "dev": "--dev: labtrack has no reloading dev mode; use --access-log to see each request",
}


def _mlflow_only_refusal(flags: dict[str, Any]) -> str | None:
    for name, line in _MLFLOW_ONLY_FLAGS.items():
        value = flags.pop(name, None)
        if name == "registry_store_uri" and value is not None and value == flags.get("backend_store_uri"):
            continue  # the same database: that is what labtrack does anyway
        if value:
            return line
    return None


def _run_server(flags: dict[str, Any]) -> None:
    from labtrack.server.main import serve
    from labtrack.settings import Settings

    refusal = _mlflow_only_refusal(flags)
    settings = Settings.from_sources(flags)
    refusal = refusal or settings.not_built()
    if refusal:
        click.echo(f"labtrack: {refusal}", err=True)
        sys.exit(2)
    try:
        code = serve(settings)
    except LabtrackError as e:
        click.echo(f"labtrack: {e.message}", err=True)
        sys.exit(2)
    except OSError as e:
        click.echo(f"labtrack: {e.strerror or e} ({getattr(e, 'filename', '') or settings.host}:{settings.port})",
                   err=True)
        sys.exit(2)
    sys.exit(code)


@main.group()
def models() -> None:
    """Serve logged or registered models; build Docker images for them."""


@models.command("serve")
@click.option("--model-uri", "-m", required=True,
              help="runs:/<run>/<name>, models:/<name>/<version|stage>, models:/<name>@<alias>, "
                   "models:/<model_id> or a local model folder.")
@click.option("--port", "-p", type=int, default=5000, show_default=True, help="TCP port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; anyone who reaches it can call it).")
@click.option("--env-manager", type=click.Choice(["local"]), default="local", hidden=True,
              help="Accepted for MLflow compatibility: the current environment is used.")
def models_serve(model_uri: str, port: int, host: str, env_manager: str) -> None:
    """Serve a model over MLflow's scoring protocol (POST /invocations)."""
    from labtrack.models.serving import serve

    try:
        serve(model_uri, host, port)
    except LabtrackError as e:
        click.echo(f"labtrack: {e.message}", err=True)
        sys.exit(2)
    except OSError as e:
        click.echo(f"labtrack: cannot serve on {host}:{port}: {e.strerror or e}", err=True)
        sys.exit(2)


@models.command("generate-dockerfile")
@click.option("--model-uri", "-m", required=True, help="The model to serve (as for `serve`).")
@click.option("--output-directory", "-d", default="labtrack-dockerfile", show_default=True,
              help="A new or empty folder for the Dockerfile and build context.")
@click.option("--base-image", default=None,
              help="Base image [default: python:<the model's Python>-slim].")
@click.option("--port", type=int, default=8080, show_default=True, help="Port inside the image.")
def models_generate_dockerfile(model_uri: str, output_directory: str, base_image: str | None,
                               port: int) -> None:
    """Write a Dockerfile and build context that serve MODEL_URI (no network needed)."""
    from labtrack.models.dockerfile import generate

    try:
        out = generate(model_uri, output_directory, base_image=base_image, port=port)
    except LabtrackError as e:
        click.echo(f"labtrack: {e.message}", err=True)
        sys.exit(2)
    click.echo(f"labtrack: wrote {out / 'Dockerfile'}; build with `docker build -t <image> {out}`")


# -h is --host for the server, as in `mlflow server -h 0.0.0.0`; --help stays.
_SERVER_CONTEXT = {"help_option_names": ["--help"]}


@main.command(context_settings=_SERVER_CONTEXT)
@_server_options
def server(**flags: Any) -> None:
    """Serve a database (default: ./mlruns.db) over MLflow's REST API and the web UI."""
    _run_server(flags)


@main.command(context_settings=_SERVER_CONTEXT)
@_server_options
def ui(**flags: Any) -> None:
    """Alias of ``labtrack server``."""
    _run_server(flags)


@main.command()
@click.argument("folder", default=".", type=click.Path(file_okay=True, dir_okay=True))
def sync(folder: str) -> None:
    """Ingest the spool files of FOLDER/mlruns.db without a server (default: this folder).

    Batch jobs that could not reach a server append their writes to spool files
    (mlruns/.labtrack/spool); a running server ingests them by itself, this does it now.
    FOLDER may also name the database file.
    """
    from labtrack.spool import spool_folder
    from labtrack.sync import SyncRefused, sync_database

    path = Path(folder).expanduser().resolve()
    db = path if path.suffix == ".db" else path / "mlruns.db"
    try:
        from labtrack.mlflow_data import resolve_database

        db = resolve_database(db)  # MLflow's database: one line naming `labtrack import`, untouched
        report = sync_database(db, progress=_progress_bar)
    except (SyncRefused, LabtrackError) as e:
        click.echo(f"labtrack: {e.message if isinstance(e, LabtrackError) else e}", err=True)
        sys.exit(1)
    if not (report.files or report.retired):
        click.echo(f"labtrack: no spool files waiting for {db}")
        return
    rejected = f", {report.rejected} rejected (see the *.rejected files)" if report.rejected else ""
    click.echo(f"labtrack: {report.records} records from {report.files} spool files applied to "
               f"{db}{rejected}; {report.retired} files retired to {spool_folder(db) / 'done'}")


def _progress_bar(total: int) -> Any:
    return click.progressbar(length=max(total, 1), label="ingesting spool", file=sys.stderr,
                             show_eta=False, show_percent=True)


# Command groups of other capabilities (labtrack/commands/<capability>.py), one line each.
from labtrack.commands.mlflow_import import import_command as _import; main.add_command(_import)  # noqa: E402
from labtrack.commands.push import push as _push; main.add_command(_push)  # noqa: E402
from labtrack.commands.projects import jobs as _jobs, run_command as _run; main.add_command(_run); main.add_command(_jobs)  # noqa: E402
from labtrack.commands.users import db as _db, users as _users; main.add_command(_users); main.add_command(_db)  # noqa: E402
from labtrack.commands.gateway import gateway as _gateway; main.add_command(_gateway)  # noqa: E402
from labtrack.commands.recipes import recipes as _recipes; main.add_command(_recipes)  # noqa: E402
from labtrack.commands.terminal import artifacts as _artifacts, experiments as _experiments, runs as _runs; main.add_command(_experiments); main.add_command(_runs); main.add_command(_artifacts)  # noqa: E402
from labtrack.commands.tui import tui as _tui; main.add_command(_tui)  # noqa: E402
from labtrack.commands.gc import gc as _gc; main.add_command(_gc)  # noqa: E402

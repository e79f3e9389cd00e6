"""``labtrack gc``: permanently remove deleted runs and experiments, and reclaim the space.

It goes through the one writer.  When a server owns the database, that
server does it (``POST /api/2.0/labtrack/gc``); when none does, this process
takes the ownership record for the time it runs, exactly as ``labtrack
sync`` does, so a server started meanwhile refuses, naming it.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from labtrack.commands.tracking import fails_in_one_line
from labtrack.errors import InvalidParameterValue, LabtrackError

_AGE = re.compile(r"^((?P<days>[\d.]+)d)?((?P<hours>[\d.]+)h)?((?P<minutes>[\d.]+)m)?((?P<seconds>[\d.]+)s)?$")


def parse_age(text: str) -> int:
    """``30d``, ``1d2h3m4s``, ``1.5h`` (as ``mlflow gc --older-than``) in milliseconds."""
    match = _AGE.match(text.strip()) if text else None
    parts = {k: float(v) for k, v in (match.groupdict() if match else {}).items() if v}
    if not parts:
        raise InvalidParameterValue(f"--older-than {text!r}: expected an age such as 30d, 12h, "
                                    "1d2h3m4s")
    return int(timedelta(**parts).total_seconds() * 1000)


def _ids(text: str | None) -> list[str] | None:
    ids = [i.strip() for i in (text or "").split(",") if i.strip()]
    return ids or None


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


@click.command("gc")
@click.option("--older-than", default=None, metavar="AGE",
              help="Only what was deleted more than AGE ago: 30d, 12h, 1d2h3m4s.")
@click.option("--experiment-ids", default=None, metavar="IDS",
              help="Comma-separated deleted experiments to remove, with all their runs "
                   "[default: every deleted experiment].")
@click.option("--run-ids", default=None, metavar="IDS",
              help="Comma-separated deleted runs to remove [default: every deleted run].")
@click.option("--backend-store-uri", default=None, metavar="URI",
              help="The database [default: mlruns.db in this folder or a parent].")
@click.option("--artifacts-destination", default=None, metavar="PATH",
              help="Its artifact folder, when no server runs [default: the folder named after the "
                   "database beside it: mlruns/ for mlruns.db].")
@click.option("--tracking-uri", default=None, metavar="URL",
              help="Ask this labtrack server to do it (it owns its database).")
@fails_in_one_line
def gc(older_than: str | None, experiment_ids: str | None, run_ids: str | None,
       backend_store_uri: str | None, artifacts_destination: str | None,
       tracking_uri: str | None) -> None:
    """Permanently remove deleted runs and experiments, with their artifacts.

    As `mlflow gc` does; then the database file shrinks (VACUUM). Runs and
    experiments named by id must be deleted already. Cannot be undone.
    """
    request = {"older_than_ms": parse_age(older_than) if older_than else 0,
               "experiment_ids": _ids(experiment_ids), "run_ids": _ids(run_ids)}
    if tracking_uri:
        report = _ask_server(_transport(tracking_uri, None), request)
    else:
        report = _on_database(backend_store_uri, artifacts_destination, request)
    click.echo(f"labtrack: removed {report['runs']} runs, {report['experiments']} experiments and "
               f"{report['logged_models']} logged models; {report['artifact_folders']} artifact "
               f"folders ({_size(report['artifact_bytes'])}); database "
               f"{_size(report['database_bytes_before'])} -> {_size(report['database_bytes_after'])}")
    for uri in report.get("artifacts_left") or []:
        click.echo(f"labtrack: left in place (outside the artifact root): {uri}", err=True)


def _transport(uri: str, auth: str | None) -> Any:
    from labtrack.client.transport import Transport

    return Transport.from_uri(uri, auth)


def _ask_server(transport: Any, request: dict[str, Any]) -> dict[str, Any]:
    from labtrack.client.transport import LABTRACK_API

    body = {k: v for k, v in request.items() if v}
    try:
        return transport.call("POST", "gc", body, api=LABTRACK_API)
    except LabtrackError as e:
        if e.error_code == "ENDPOINT_NOT_FOUND":
            raise LabtrackError(f"{transport.uri} is not a labtrack server (for an MLflow server, "
                                "run `mlflow gc` beside it)", "INVALID_PARAMETER_VALUE") from e
        raise


def _on_database(backend_store_uri: str | None, artifacts_destination: str | None,
                 request: dict[str, Any]) -> dict[str, Any]:
    from labtrack.client.discovery import find_database
    from labtrack.mlflow_data import artifacts_folder, resolve_database
    from labtrack.store.engine import normalize_url, sqlite_file

    if backend_store_uri:
        url = normalize_url(backend_store_uri)
        db = sqlite_file(url)
        if db is not None:  # MLflow's own file: the labtrack.db an import made beside it
            db = resolve_database(db)
            url = f"sqlite:///{db}"
    else:
        db = find_database()
        if db is None:
            raise LabtrackError("no mlruns.db in this folder or a parent: pass --backend-store-uri",
                                "RESOURCE_DOES_NOT_EXIST")
        url = f"sqlite:///{db}"
    if db is not None and not db.is_file():
        raise LabtrackError(f"{db} does not exist", "RESOURCE_DOES_NOT_EXIST")
    if db is not None:
        from labtrack import ownership

        owner = ownership.read_owner(db)
        if owner is not None:
            from labtrack.client.discovery import server_for_database
            from labtrack.client.transport import Transport

            from labtrack.client.transport import auth_header_from_env

            endpoint, auth = server_for_database(db, start=False)
            # A team server has no token: its users sign in (MLFLOW_TRACKING_USERNAME/PASSWORD).
            return _ask_server(Transport(endpoint, auth or auth_header_from_env()), request)
    if db is None and not artifacts_destination:
        raise LabtrackError("a database server's artifacts may be anywhere: pass --artifacts-destination "
                            "(or --tracking-uri to ask a labtrack server of it)", "INVALID_PARAMETER_VALUE")
    # As the server would serve it: mlruns.db -> mlruns/, labtrack.db -> labtrack/ (never
    # MLflow's own mlruns/ beside an imported labtrack.db, whose run ids are the same).
    folder = Path(artifacts_destination) if artifacts_destination else (
        artifacts_folder(db) if db is not None else Path.cwd() / "mlruns")
    return _own_and_collect(url, db, str(folder), request)


def _own_and_collect(url: str, db: Path | None, artifacts: str, request: dict[str, Any]) -> dict[str, Any]:
    """Hold the database's ownership record (as ``labtrack sync`` does) while collecting."""
    from labtrack import ownership
    from labtrack._version import __version__
    from labtrack.artifacts.roots import open_root
    from labtrack.server.api_gc import garbage_collect
    from labtrack.store.tracking import TrackingStore

    if db is not None:
        record = ownership.OwnerRecord(host=socket.gethostname(), pid=os.getpid(), database=str(db),
                                       version=__version__)
        ownership.claim(db, record)  # DatabaseInUse names a server that started a moment ago
    try:
        store = TrackingStore(url)
        try:
            root = open_root(artifacts)
            return garbage_collect(store, root, older_than_ms=request["older_than_ms"],
                                   experiment_ids=request["experiment_ids"], run_ids=request["run_ids"])
        finally:
            store.close()
    finally:
        if db is not None:
            ownership.release(db)

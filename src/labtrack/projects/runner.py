"""``labtrack run``: an MLproject entry point as a tracked run, here or on SLURM.

The run is created before the code starts, with MLflow's project tags and the
entry point's parameters, and the code continues it: the launcher hands it
``MLFLOW_RUN_ID`` (read by ``lt.start_run()`` and ``mlflow.start_run()``) and
the tracking target.  The run ends FINISHED when the command exits 0, FAILED
otherwise, KILLED on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtrack.client.client import Client
from labtrack.errors import LabtrackError, ResourceAlreadyExists
from labtrack.projects import environments, sources, spec

TAG_BACKEND = "mlflow.project.backend"
TAG_ENV = "mlflow.project.env"
TAG_ENTRY_POINT = "mlflow.project.entryPoint"


@dataclass
class Launch:
    """What to run: the checked-out source, its project, entry point and parameter values."""

    source: sources.Source
    project: spec.Project
    entry_point: spec.EntryPoint
    parameters: dict[str, str]
    env_manager: str | None

    @classmethod
    def resolve(cls, uri: str, entry_point: str = "main", parameters: dict[str, Any] | None = None,
                version: str | None = None, env_manager: str | None = None) -> Launch:
        source = sources.fetch(uri, version)
        project = spec.load_project(source.folder)
        ep = project.entry_point(entry_point)
        params = {str(k): str(v) for k, v in (parameters or {}).items()}
        ep.compute_parameters(params)  # refuse bad values before anything is created
        return cls(source, project, ep, params, env_manager)

    def command(self, parameters: dict[str, str] | None = None) -> str:
        return self.entry_point.compute_command(self.parameters if parameters is None else parameters)

    def tags(self, backend: str, env_manager: str) -> dict[str, str]:
        """MLflow's project tags, so runs look the same whichever tool launched them."""
        from labtrack.client import system_tags as st

        tags = {st.USER: st.user_name(), **st.git_tags(str(self.source.folder))}
        tags.update({"mlflow.source.type": "PROJECT", TAG_ENTRY_POINT: self.entry_point.name,
                     TAG_BACKEND: backend, TAG_ENV: env_manager,
                     "mlflow.source.name": self.source.repo_url or str(self.source.folder)})
        if self.source.commit:
            tags["mlflow.source.git.commit"] = self.source.commit
        if self.source.repo_url:
            tags["mlflow.source.git.repoURL"] = self.source.repo_url
            tags["mlflow.gitRepoURL"] = self.source.repo_url
        if self.source.branch:
            tags["mlflow.source.git.branch"] = self.source.branch
        return tags

    def create_run(self, client: Client, experiment_id: str, backend: str, env_manager: str,
                   parameters: dict[str, str] | None = None, run_name: str | None = None,
                   extra_tags: dict[str, str] | None = None) -> str:
        """Create the run (with its parameters logged) and return its id."""
        params = self.parameters if parameters is None else parameters
        final, extra = self.entry_point.compute_parameters(params)
        tags = {**self.tags(backend, env_manager), **(extra_tags or {})}
        run = client.create_run(experiment_id, tags=tags, run_name=run_name)
        logged = {**final, **extra}
        if logged:
            client.log_batch(run.info.run_id, params=logged, synchronous=True)
        return run.info.run_id


def experiment_id(client: Client, name: str | None = None, experiment_id: str | None = None) -> str:
    """The experiment to run in: by id, by name (created if new), else the environment's, else 0."""
    if experiment_id:
        return str(experiment_id)
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not name:
        return os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except ResourceAlreadyExists:
        return client.get_experiment_by_name(name).experiment_id  # type: ignore[union-attr]


def tracking_env(client: Client, batch: bool = False) -> dict[str, str]:
    """Variables that point a launched process at the same tracking target.

    A named http(s) URI is passed on as it is.  Otherwise the database is named
    (``LABTRACK_DATABASE``), so that ``lt`` finds its server or spools on a
    compute node; a local launch also gets ``MLFLOW_TRACKING_URI`` for code that
    uses the mlflow client.
    """
    from labtrack.client.discovery import database_from_uri, env_tracking_uri, find_database

    uri = client.tracking_uri if client.tracking_uri.startswith(("http://", "https://")) else None
    named = env_tracking_uri()
    if named and named.startswith(("http://", "https://")):
        return {"MLFLOW_TRACKING_URI": named, "LABTRACK_TRACKING_URI": named}
    db = (database_from_uri(named) if named else None) or find_database()
    if db is None:
        if uri:
            return {"MLFLOW_TRACKING_URI": uri, "LABTRACK_TRACKING_URI": uri}
        db = Path.cwd().resolve() / "mlruns.db"
    env = {"LABTRACK_DATABASE": str(db)}
    if not batch:
        try:
            from labtrack.client.mlflow_env import mlflow_env

            env.update(mlflow_env(db))
        except LabtrackError:
            pass
    return env


def run_local(launch: Launch, client: Client, experiment: str, run_name: str | None = None,
              parent_run_id: str | None = None) -> tuple[str, str]:
    """Run the entry point here and wait; returns (run id, final status)."""
    env_obj = environments.prepare(launch.project, launch.env_manager)
    extra = {"mlflow.parentRunId": parent_run_id} if parent_run_id else None
    run_id = launch.create_run(client, experiment, "local", env_obj.manager, run_name=run_name,
                               extra_tags=extra)
    env = env_obj.apply(dict(os.environ))
    for name in ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_DATABASE"):
        env.pop(name, None)
    env.update(tracking_env(client))
    env.update({"MLFLOW_RUN_ID": run_id, "MLFLOW_EXPERIMENT_ID": experiment})
    command = launch.command()
    print(f"labtrack: === running {command!r} in run {run_id} ===", file=sys.stderr)
    proc = subprocess.Popen(["bash", "-c", command], cwd=launch.source.folder, env=env,
                            start_new_session=True)
    status = "FAILED"
    try:
        status = "FINISHED" if proc.wait() == 0 else "FAILED"
    except KeyboardInterrupt:
        status = "KILLED"
        _stop(proc)
        raise
    finally:
        client.flush()
        # The code may have ended the run itself; the exit status decides, as with mlflow run.
        client.set_terminated(run_id, status)
    return run_id, status


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass

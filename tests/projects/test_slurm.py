"""`labtrack run --backend slurm` on the real single-node cluster that .ci/start-slurm starts.

The tasks run under ``unshare -n`` (the backend config's ``launcher``): a compute
node with no route to the server, so every write reaches it through the spool.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

import labtrack as lt
from labtrack.spool import spool_folder
from tests.client_state import reset_client_state
from tests.projects.conftest import Cli, base_env
from tests.servers import ServerProcess


def _slurm_missing() -> str | None:
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (apt-get install slurm-wlm munge; .ci/start-slurm starts it)"
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if out.returncode or not any(s.startswith(("idle", "mixed", "alloc")) for s in out.stdout.split()):
        return f"no SLURM node is up (bash .ci/start-slurm starts one): {out.stderr.strip() or out.stdout.strip()}"
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode:
        return "unshare -n is not permitted here (needed to cut the tasks' network)"
    return None


pytestmark = pytest.mark.skipif(_slurm_missing() is not None, reason=str(_slurm_missing()))


def _setup(tmp_path: Path, server: ServerProcess, **config: str) -> tuple[Cli, Path]:
    env = base_env(tmp_path)
    env["LABTRACK_DATABASE"] = str(server.artifacts.parent / "mlruns.db")
    if server.token:
        env["LABTRACK_TRACKING_TOKEN"] = server.token
    cfg = tmp_path / "slurm.yaml"
    lines = {"mem": "200M", "launcher": "unshare -n", "poll_interval": "1", **config}
    cfg.write_text("".join(f"{k}: {v!r}\n" for k, v in lines.items()))
    return Cli(tmp_path, env), cfg


def _client(server: ServerProcess) -> lt.Client:
    import os

    reset_client_state()
    os.environ["LABTRACK_TRACKING_TOKEN"] = server.token or ""
    return lt.Client(server.url)


def _runs(client: lt.Client, experiment: str) -> list[lt.Run]:
    exp = client.get_experiment_by_name(experiment)
    return list(client.search_runs([exp.experiment_id])) if exp else []


def _wait(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_grid_runs_as_one_array_through_the_spool(labtrack_server: ServerProcess, project: Path,
                                                 tmp_path: Path) -> None:
    cli, cfg = _setup(tmp_path, labtrack_server, time="5")
    out = cli.labtrack("run", str(project), "-b", "slurm", "-c", str(cfg), "-P", "alpha=0.1,0.2",
                       "-P", "epochs=2,3", "--env-manager", "local", "--experiment-name", "grid",
                       timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "with 4 task(s)" in out.stdout
    client = _client(labtrack_server)

    def children_with_metrics():  # type: ignore[no-untyped-def]
        runs = _runs(client, "grid")
        kids = [r for r in runs if "mlflow.parentRunId" in r.tags]
        return runs if len(kids) == 4 and all("loss" in r.metrics for r in kids) else None

    runs = _wait(children_with_metrics)
    assert runs, "the four tasks' metrics never arrived"
    parents = [r for r in runs if "mlflow.parentRunId" not in r.tags]
    kids = [r for r in runs if "mlflow.parentRunId" in r.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    array_id = parents[0].tags["slurm.array_job_id"]
    assert {r.tags["mlflow.parentRunId"] for r in kids} == {parents[0].info.run_id}
    assert sorted((r.params["alpha"], r.params["epochs"]) for r in kids) == [
        ("0.1", "2"), ("0.1", "3"), ("0.2", "2"), ("0.2", "3")]
    for run in kids:
        assert run.info.status == "FINISHED"
        epochs = int(run.params["epochs"])
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == list(range(epochs))
        # SLURM context from inside the task, and the scheduler's word from outside.
        assert run.tags["slurm.array_job_id"] == array_id
        assert run.tags["slurm.partition"] == "debug"
        assert run.tags["labtrack.slurm.state"] == "COMPLETED"
        assert run.tags["labtrack.slurm.job_id"] == f"{array_id}_{run.tags['slurm.array_task_id']}"
    # Found by its array id, as the README says.
    found = client.search_runs([kids[0].info.experiment_id], f"tags.`slurm.array_job_id` = '{array_id}'")
    assert len(found) == 5
    # The run page's job output: the tail of the task's stderr, which says it spooled.
    logs = labtrack_server.api("GET", "/api/2.0/labtrack/jobs/logs",
                               {"run_id": kids[0].info.run_id, "stream": "stderr"})
    assert logs.status_code == 200 and "spooling writes" in logs.json()["text"], logs.text
    # A tag cannot make the server read another file.
    labtrack_server.api("POST", "runs/set-tag", {"run_id": kids[0].info.run_id,
                                                 "key": "labtrack.slurm.stdout", "value": "/etc/passwd"})
    refused = labtrack_server.api("GET", "/api/2.0/labtrack/jobs/logs", {"run_id": kids[0].info.run_id})
    assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "root:" not in refused.text
    # Every write went through spool files (the tasks had no network at all).
    db = labtrack_server.artifacts.parent / "mlruns.db"
    spooled = list(spool_folder(db).rglob("*.jsonl"))
    assert len(spooled) >= 4, spooled


def test_a_task_past_its_time_limit_ends_failed_with_the_reason(
        labtrack_server: ServerProcess, project: Path, tmp_path: Path) -> None:
    cli, cfg = _setup(tmp_path, labtrack_server, time="1")
    out = cli.labtrack("run", str(project), "-b", "slurm", "-c", str(cfg), "-e", "sleepy",
                       "-P", "seconds=600", "--env-manager", "local", "--experiment-name", "slow",
                       timeout=400)
    assert out.returncode == 1, out.stdout + out.stderr
    client = _client(labtrack_server)
    (run,) = _runs(client, "slow")
    assert run.info.status == "FAILED"
    assert run.tags["labtrack.slurm.state"] == "TIMEOUT"
    assert "alive" in run.metrics  # what it logged before the scheduler killed it is kept


def test_cancelling_from_labtrack_ends_the_job_and_marks_the_run_killed(
        labtrack_server: ServerProcess, project: Path, tmp_path: Path) -> None:
    cli, cfg = _setup(tmp_path, labtrack_server, time="5")
    out = cli.labtrack("run", str(project), "-b", "slurm", "-c", str(cfg), "-e", "sleepy",
                       "-P", "seconds=600", "--env-manager", "local", "--experiment-name", "cancel",
                       "--detach")
    assert out.returncode == 0, out.stderr
    client = _client(labtrack_server)
    run = _wait(lambda: next((r for r in _runs(client, "cancel") if "alive" in r.metrics), None))
    assert run is not None, "the job never started logging"
    listed = cli.labtrack("jobs")
    assert run.tags["labtrack.slurm.job_id"] in listed.stdout and "RUNNING" in listed.stdout
    out = cli.labtrack("jobs", "cancel", run.info.run_id)
    assert out.returncode == 0, out.stderr
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    job = run.tags["labtrack.slurm.job_id"]
    gone = _wait(lambda: job.split("_")[0] not in subprocess.run(
        ["squeue", "-h", "-o", "%F"], capture_output=True, text=True).stdout, timeout=30)
    assert gone, "the job is still in the queue after scancel"
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_the_server_ends_a_detached_jobs_run_and_cancels_from_the_ui(
        labtrack_server: ServerProcess, project: Path, tmp_path: Path) -> None:
    (project / "fail.py").write_text("import sys\nsys.exit(3)\n")
    cli, cfg = _setup(tmp_path, labtrack_server, time="5")
    out = cli.labtrack("run", str(project), "-b", "slurm", "-c", str(cfg), "-e", "fail.py",
                       "--env-manager", "local", "--experiment-name", "detached", "--detach")
    assert out.returncode == 0, out.stderr
    client = _client(labtrack_server)
    # Nobody follows the job: the server's job watch ends the run as the job ended.
    run = _wait(lambda: next((r for r in _runs(client, "detached") if r.info.status == "FAILED"), None))
    assert run is not None, [r.info.status for r in _runs(client, "detached")]
    assert run.tags["labtrack.slurm.state"] == "FAILED" and run.tags["labtrack.slurm.exit_code"] == "3:0"

    out = cli.labtrack("run", str(project), "-b", "slurm", "-c", str(cfg), "-e", "sleepy",
                       "-P", "seconds=600", "--env-manager", "local", "--experiment-name", "ui-cancel",
                       "--detach")
    run = _wait(lambda: next((r for r in _runs(client, "ui-cancel") if "alive" in r.metrics), None))
    assert run is not None
    reply = labtrack_server.api("POST", "/api/2.0/labtrack/jobs/cancel", {"run_id": run.info.run_id})
    assert reply.status_code == 200, reply.text
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert client.get_run(run.info.run_id).tags["labtrack.slurm.state"] == "CANCELLED"

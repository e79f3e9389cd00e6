"""`labtrack run` on an MLproject, and `mlflow run` on the same project, against real servers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import labtrack as lt
from tests.client.conftest import start_mlflow, stop
from tests.client_state import reset_client_state
from tests.projects.conftest import Cli, base_env
from tests.servers import ServerProcess

PROJECT_TAGS = ("mlflow.source.type", "mlflow.project.entryPoint", "mlflow.project.env",
                "mlflow.project.backend")


def _client(url: str, token: str | None) -> lt.Client:
    import os

    reset_client_state()
    if token:
        os.environ["LABTRACK_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("LABTRACK_TRACKING_TOKEN", None)
    return lt.Client(url)


def _cli(tmp_path: Path, url: str, token: str | None) -> Cli:
    env = base_env(tmp_path)
    env["MLFLOW_TRACKING_URI"] = url
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    return Cli(tmp_path, env)


def _only_run(client: lt.Client, experiment: str) -> lt.Run:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    runs = list(client.search_runs([exp.experiment_id]))
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


@pytest.mark.parametrize("env_manager", ["local", "virtualenv"])
def test_labtrack_run_ends_finished_with_params_tags_metrics(
        labtrack_server: ServerProcess, project: Path, tmp_path: Path, env_manager: str) -> None:
    cli = _cli(tmp_path, labtrack_server.url, labtrack_server.token)
    out = cli.labtrack("run", str(project), "-P", "alpha=0.2", "-P", "label=a b",
                       "--env-manager", env_manager, "--experiment-name", "proj")
    assert out.returncode == 0, out.stderr
    client = _client(labtrack_server.url, labtrack_server.token)
    run = _only_run(client, "proj")
    assert run.info.status == "FINISHED"
    assert run.params == {"alpha": "0.2", "epochs": "3", "label": "a b"}
    assert run.tags["mlflow.source.type"] == "PROJECT"
    assert run.tags["mlflow.project.entryPoint"] == "main"
    assert run.tags["mlflow.project.env"] == env_manager
    assert run.tags["mlflow.project.backend"] == "local"
    assert run.tags["label"] == "a b"  # the script's own tag: it continued the launcher's run
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert history[0].value == pytest.approx(0.2)


def test_second_entry_point_extra_params_and_failure_status(
        labtrack_server: ServerProcess, project: Path, tmp_path: Path) -> None:
    (project / "fail.py").write_text("import sys\nsys.exit(3)\n")
    cli = _cli(tmp_path, labtrack_server.url, labtrack_server.token)
    out = cli.labtrack("run", str(project), "-e", "fail.py", "-P", "extra=1",
                       "--env-manager", "local", "--experiment-name", "fails")
    assert out.returncode == 1
    run = _only_run(_client(labtrack_server.url, labtrack_server.token), "fails")
    assert run.info.status == "FAILED"
    assert run.params == {"extra": "1"}  # undeclared parameters are logged and passed as --extra 1


@pytest.mark.parametrize("args, message", [
    (["-P", "alpha=abc"], "parameter 'alpha' must be a float, got 'abc'"),
    (["-e", "nope"], "has no entry point 'nope'"),
    (["--version", "v1"], "--version needs a Git project URI"),
])
def test_bad_requests_get_one_line_and_create_nothing(
        labtrack_server: ServerProcess, project: Path, tmp_path: Path, args: list[str],
        message: str) -> None:
    cli = _cli(tmp_path, labtrack_server.url, labtrack_server.token)
    out = cli.labtrack("run", str(project), "--env-manager", "local", "--experiment-name", "bad", *args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert _client(labtrack_server.url, labtrack_server.token).get_experiment_by_name("bad") is None


def test_docker_env_is_refused_with_apptainer_advice(labtrack_server: ServerProcess, project: Path,
                                                    tmp_path: Path) -> None:
    spec = (project / "MLproject").read_text().replace("python_env: python_env.yaml",
                                                      "docker_env:\n  image: my/image:1")
    (project / "MLproject").write_text(spec)
    out = _cli(tmp_path, labtrack_server.url, labtrack_server.token).labtrack("run", str(project))
    assert out.returncode == 2 and "Apptainer" in out.stderr and "my/image:1" in out.stderr


def test_missing_env_managers_are_refused_in_one_line(labtrack_server: ServerProcess, project: Path,
                                                      tmp_path: Path) -> None:
    cli = _cli(tmp_path, labtrack_server.url, labtrack_server.token)
    if shutil.which("conda") is None and shutil.which("mamba") is None:
        out = cli.labtrack("run", str(project), "--env-manager", "conda")
        assert out.returncode == 2 and "needs conda" in out.stderr
    if shutil.which("uv") is None:
        out = cli.labtrack("run", str(project), "--env-manager", "uv")
        assert out.returncode == 2 and "pip install uv" in out.stderr


def test_git_source_with_version_and_subdirectory(labtrack_server: ServerProcess, project: Path,
                                                  tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(project, repo / "proj")
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "one"], check=True)
    first = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
    (repo / "proj" / "train.py").write_text("raise SystemExit('the second commit must not run')\n")
    subprocess.run([*git, "-C", str(repo), "commit", "-qam", "two"], check=True)
    cli = _cli(tmp_path, labtrack_server.url, labtrack_server.token)
    out = cli.labtrack("run", f"file://{repo}#proj", "--version", first, "--env-manager", "local",
                       "--experiment-name", "git")
    assert out.returncode == 0, out.stderr
    run = _only_run(_client(labtrack_server.url, labtrack_server.token), "git")
    assert run.info.status == "FINISHED"
    assert run.tags["mlflow.source.git.commit"] == first
    assert run.tags["mlflow.source.git.repoURL"] == f"file://{repo}"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    server = start_mlflow(tmp_path_factory.mktemp("mlflow-projects"))
    yield server
    stop(server.proc)


def _observed(client: lt.Client, run: lt.Run) -> dict:
    history = client.get_metric_history(run.info.run_id, "loss")
    return {"status": run.info.status, "params": run.params,
            "tags": {k: run.tags.get(k) for k in PROJECT_TAGS},
            "loss": [(m.step, m.value) for m in history]}


def test_mlflow_run_against_labtrack_observes_what_it_does_against_mlflow(
        labtrack_server: ServerProcess, mlflow_server, project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seen = {}
    for name, url, token in (("labtrack", labtrack_server.url, labtrack_server.token),
                             ("mlflow", mlflow_server.uri, None)):
        cli = _cli(tmp_path, url, token)
        out = cli("mlflow", "run", str(project), "-e", "mlflow_main", "-P", "alpha=0.3",
                  "--env-manager", "local", "--experiment-name", f"mlflow-run-{name}", timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        client = _client(url, token)
        seen[name] = _observed(client, _only_run(client, f"mlflow-run-{name}"))
    assert seen["labtrack"] == seen["mlflow"]
    assert seen["labtrack"]["tags"]["mlflow.project.entryPoint"] == "mlflow_main"


def test_labtrack_run_against_a_real_mlflow_server(mlflow_server, project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = _cli(tmp_path, mlflow_server.uri, None)
    out = cli.labtrack("run", str(project), "-e", "mlflow_main", "-P", "alpha=0.3",
                       "--env-manager", "local", "--experiment-name", "from-labtrack")
    assert out.returncode == 0, out.stderr
    client = _client(mlflow_server.uri, None)
    observed = _observed(client, _only_run(client, "from-labtrack"))
    assert observed["status"] == "FINISHED" and observed["params"] == {"alpha": "0.3"}
    assert observed["tags"]["mlflow.project.backend"] == "local"
    assert [s for s, _ in observed["loss"]] == [0, 1, 2]

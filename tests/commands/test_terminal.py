"""The terminal commands (``labtrack experiments list``, ``runs list``, ``runs describe``,
``artifacts list|download``) against a real ``mlflow server`` and a real labtrack server,
run as a user on SSH runs them: a subprocess, the server named by a URI or found
through ``mlruns.db`` in the working folder.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.conftest import TrackingServer
from tests.commands.conftest import command_env
from tests.servers import start_server


def _labtrack(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labtrack", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _table(text: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of a printed table, checking that every column is aligned."""
    lines = text.rstrip("\n").splitlines()
    header, rule, body = lines[0], lines[1], lines[2:]
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    ends = [i for i, ch in enumerate(rule) if ch == "-" and (i + 1 == len(rule) or rule[i + 1] == " ")]

    def cut(line: str) -> list[str]:
        for s in starts[1:]:  # a column starts right after two spaces of padding
            assert line[s - 2:s] == "  " or len(line) <= s - 2, (line, s)
        return [line[s:e + 1].strip() for s, e in zip(starts, ends)]

    return cut(header), [cut(line) for line in body]


@pytest.fixture(scope="module")
def logged(remote: TrackingServer) -> Iterator[dict[str, str]]:
    """An experiment of three runs, logged by the real mlflow client (once per server)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", remote.token or "")
        yield _log(remote)


def _log(remote: TrackingServer) -> dict[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(remote.uri)
    name = f"term-{uuid.uuid4().hex[:8]}"
    exp = client.create_experiment(name)
    ids = {"experiment": name, "experiment_id": exp}
    for i in range(3):
        run = client.create_run(exp, run_name=f"r{i}", tags={"team": "vision"})
        rid = run.info.run_id
        client.log_param(rid, "lr", str(0.1 * i)[:3])
        for step in range(4):
            client.log_metric(rid, "loss", 1.0 / (step + 1 + i), step=step)
        client.log_metric(rid, "acc", 0.5 + i / 10)
        client.log_text(rid, f"notes of r{i}", "notes/readme.txt")
        client.set_terminated(rid)
        ids[f"r{i}"] = rid
    return ids


def test_experiments_list(remote: TrackingServer, logged: dict[str, str]) -> None:
    out = _labtrack("experiments", "list", "--tracking-uri", remote.uri, env=command_env(remote.token))
    assert out.returncode == 0, out.stderr
    headers, rows = _table(out.stdout)
    assert headers[:3] == ["ID", "NAME", "STAGE"]
    assert [logged["experiment_id"], logged["experiment"], "active"] in [r[:3] for r in rows]


def test_runs_list_filters_orders_and_picks_columns(remote: TrackingServer, logged: dict[str, str]) -> None:
    out = _labtrack("runs", "list", "--tracking-uri", remote.uri, "--experiment", logged["experiment"],
                    "--filter", "metrics.acc > 0.55", "--order-by", "metrics.acc DESC",
                    "--columns", "run_name,metrics.acc,params.lr,tags.team,status",
                    env=command_env(remote.token))
    assert out.returncode == 0, out.stderr
    headers, rows = _table(out.stdout)
    assert headers == ["RUN_NAME", "metrics.acc", "params.lr", "tags.team", "STATUS"]
    assert rows == [["r2", "0.7", "0.2", "vision", "FINISHED"], ["r1", "0.6", "0.1", "vision", "FINISHED"]]

    # The default columns: ids, names and every metric and param; an experiment by its id.
    out = _labtrack("runs", "list", "--tracking-uri", remote.uri, "-e", logged["experiment_id"],
                    "--order-by", "attributes.run_name ASC", env=command_env(remote.token))
    headers, rows = _table(out.stdout)
    assert headers[:3] == ["RUN_ID", "RUN_NAME", "STATUS"]
    assert {"metrics.acc", "metrics.loss", "params.lr"} <= set(headers)
    assert [r[:2] for r in rows] == [[logged[f"r{i}"], f"r{i}"] for i in range(3)]
    loss = headers.index("metrics.loss")
    assert [r[loss] for r in rows] == ["0.25", "0.2", "0.166667"]

    bad = _labtrack("runs", "list", "--tracking-uri", remote.uri, "-e", logged["experiment"],
                    "--filter", "metrics.acc >>> 1", env=command_env(remote.token))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_runs_describe(remote: TrackingServer, logged: dict[str, str]) -> None:
    out = _labtrack("runs", "describe", logged["r1"], "--tracking-uri", remote.uri,
                    env=command_env(remote.token))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"Run ID        {logged['r1']}" in text
    assert f"Experiment    {logged['experiment']} (id {logged['experiment_id']})" in text
    params = text.split("Params:\n", 1)[1].split("\n\n", 1)[0]
    assert _table(params)[1] == [["lr", "0.1"]]
    metrics = text.split("Metrics (latest):\n", 1)[1].split("\n\n", 1)[0]
    assert [r[:3] for r in _table(metrics)[1]] == [["acc", "0.6", "0"], ["loss", "0.2", "3"]]
    assert "team  vision" in text and "notes/" in text

    missing = _labtrack("runs", "describe", "0" * 32, "--tracking-uri", remote.uri,
                        env=command_env(remote.token))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("labtrack: ") and len(missing.stderr.strip().splitlines()) == 1


def test_artifacts_list_and_download(remote: TrackingServer, logged: dict[str, str], tmp_path: Path) -> None:
    env = command_env(remote.token)
    out = _labtrack("artifacts", "list", "--run-id", logged["r2"], "--artifact-path", "notes",
                    "--tracking-uri", remote.uri, env=env)
    assert out.returncode == 0, out.stderr
    assert _table(out.stdout)[1] == [["notes/readme.txt", str(len("notes of r2"))]]
    out = _labtrack("artifacts", "download", "--run-id", logged["r2"], "--dst", str(tmp_path / "all"),
                    "--tracking-uri", remote.uri, env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "all" / "notes" / "readme.txt").read_text() == "notes of r2"
    out = _labtrack("artifacts", "download", "--run-id", logged["r0"], "--artifact-path",
                    "notes/readme.txt", "--dst", str(tmp_path / "one"), "--tracking-uri", remote.uri,
                    env=env)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).read_text() == "notes of r0"


def test_found_through_the_folders_database(tmp_path: Path,
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """No URI: the server of ./mlruns.db, as lt finds it; no database where none exists."""
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    try:
        assert srv.api("POST", "experiments/create", {"name": "here"}).status_code == 200
        (tmp_path / "sub").mkdir()
        out = _labtrack("experiments", "list", env=command_env(), cwd=tmp_path / "sub")
        assert out.returncode == 0, out.stderr
        assert "here" in [r[1] for r in _table(out.stdout)[1]]
    finally:
        srv.stop()
    empty = tmp_path_factory.mktemp("no-database")
    out = _labtrack("runs", "list", env=command_env(), cwd=empty)
    assert out.returncode == 1 and "no tracking server found" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (empty / "mlruns.db").exists()

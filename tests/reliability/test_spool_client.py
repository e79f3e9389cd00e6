"""The client's side of the spool: when it spools, what it writes, what it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import labtrack as lt
from labtrack import ownership
from labtrack.client.spool_transport import FallbackTransport, SpoolTransport
from labtrack.errors import SpoolReadError
from labtrack.spool import read_records, spool_files, spool_folder
from tests.servers import start_server

from .conftest import CLIENT_ENV, child_env, metric_counts, query, wait_until


@pytest.fixture
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)


def records(db: Path) -> list[dict]:
    return [r.data for p in spool_files(spool_folder(db)) for r in read_records(p).records]


def test_a_batch_job_with_no_server_spools_and_never_opens_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_client_env: None) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "77")  # inside a job: no server may be started
    client = lt.Client()
    assert isinstance(client.transport, SpoolTransport)
    exp_id = client.create_experiment("sweep", tags={"owner": "ana"})
    run = client.create_run(exp_id, run_name="task-3", tags={"seed": "3"})
    client.log_batch(run.info.run_id, metrics=[lt.Metric("loss", float("nan"), 5, 0)],
                     params={"lr": 0.1}, synchronous=True)
    client.log_metric(run.info.run_id, "loss", 0.5, timestamp=6, step=1)
    client.set_terminated(run.info.run_id)
    client.flush()
    assert not (tmp_path / "mlruns.db").exists() and ownership.read_owner(tmp_path / "mlruns.db") is None
    ops = [r["op"] for r in records(tmp_path / "mlruns.db")]
    assert ops == ["set_experiment", "create_run", "log_batch", "log_series", "update_run"]
    create = records(tmp_path / "mlruns.db")[1]
    assert create["experiment_name"] == "sweep" and create["run_id"] == run.info.run_id

    out = subprocess.run([sys.executable, "-m", "labtrack", "sync"], cwd=tmp_path, env=child_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    db = tmp_path / "mlruns.db"
    assert query(db, """SELECT e.name, r.name, r.status FROM runs r JOIN experiments e USING (experiment_id)
                        WHERE r.run_uuid = :id""", id=run.info.run_id) == [("sweep", "task-3", "FINISHED")]
    assert query(db, "SELECT step, is_nan FROM metrics ORDER BY step") == [(0, 1), (1, 0)]
    assert query(db, "SELECT value FROM params WHERE key = 'lr'") == [("0.1",)]
    assert query(db, "SELECT key, value FROM experiment_tags") == [("owner", "ana")]


def test_reads_while_spooling_raise_a_typed_error_that_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_client_env: None) -> None:
    monkeypatch.setenv("LABTRACK_SPOOL", "1")
    client = lt.Client(f"sqlite:///{tmp_path / 'mlruns.db'}")
    run = client.create_run("0")
    for read in (lambda: client.search_runs(["0"]), lambda: client.get_run(run.info.run_id),
                 lambda: client.get_metric_history(run.info.run_id, "loss")):
        with pytest.raises(SpoolReadError, match="spool"):
            read()
    assert "ingested" in str(pytest.raises(SpoolReadError, client.search_experiments).value)


def test_a_server_on_another_host_is_not_reachable_so_writes_spool_and_it_ingests_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_client_env: None) -> None:
    db = tmp_path / "mlruns.db"
    srv = start_server(f"sqlite:///{db}", tmp_path)
    try:
        # The owner record as a server on a login node writes it: another host, loopback only.
        lock = ownership.lock_path(db)
        record = json.loads(lock.read_text())
        lock.write_text(json.dumps(dict(record, host="login-node-2")))
        monkeypatch.setenv("LABTRACK_DATABASE", str(db))
        client = lt.Client()
        assert isinstance(client.transport, SpoolTransport)
        run = client.create_run("0", run_name="from-a-compute-node")
        client.log_batch(run.info.run_id, metrics=[lt.Metric("loss", float(i), 1, i) for i in range(50)],
                         synchronous=True)
        assert wait_until(lambda: metric_counts(db).get("from-a-compute-node") == (50, 50), timeout=15)
    finally:
        srv.stop()


def test_a_reachable_server_is_used_over_http_with_the_spool_as_fallback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_client_env: None) -> None:
    db = tmp_path / "mlruns.db"
    srv = start_server(f"sqlite:///{db}", tmp_path)
    try:
        monkeypatch.setenv("LABTRACK_DATABASE", str(db))
        client = lt.Client()
        assert isinstance(client.transport, FallbackTransport)
        assert client.tracking_uri == srv.url
        monkeypatch.setenv("LABTRACK_SPOOL", "0")
        assert not isinstance(lt.Client().transport, (FallbackTransport, SpoolTransport))
    finally:
        srv.stop()


def test_after_the_server_is_gone_a_new_experiment_and_run_are_spooled_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_client_env: None) -> None:
    db = tmp_path / "mlruns.db"
    srv = start_server(f"sqlite:///{db}", tmp_path)
    monkeypatch.setenv("LABTRACK_DATABASE", str(db))
    monkeypatch.setenv("SLURM_JOB_ID", "5")  # may not start a server of its own
    monkeypatch.setenv("LABTRACK_HTTP_REQUEST_MAX_RETRIES", "0")
    client = lt.Client()
    first = client.create_run("0", run_name="before")
    srv.stop("kill")
    # What lt.set_experiment("later") does, then a run in it.
    assert client.get_experiment_by_name("later") is None
    exp_id = client.create_experiment("later")
    assert client.get_experiment(exp_id).name == "later"
    run = client.create_run(exp_id, run_name="after")
    client.log_batch(first.info.run_id, params={"k": "v"}, synchronous=True)
    client.log_batch(run.info.run_id, metrics=[lt.Metric("loss", 1.0, 1, 0)], synchronous=True)
    assert client.transport.spooling
    srv = start_server(f"sqlite:///{db}", tmp_path)
    try:
        assert wait_until(lambda: metric_counts(db).get("after") == (1, 1), timeout=15)
        assert query(db, """SELECT e.name FROM runs r JOIN experiments e USING (experiment_id)
                            WHERE r.name = 'after'""") == [("later",)]
        assert query(db, "SELECT key, value FROM params") == [("k", "v")]
    finally:
        srv.stop()

"""Transports: tokens, unix sockets, keep-alive and retries, against real servers."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import labtrack as lt
from labtrack.client.transport import Transport, auth_header_from_env, parse_unix_uri, unix_uri
from labtrack.errors import TransientError, Unauthenticated
from labtrack.ownership import read_owner

from .conftest import CLIENT_ENV, free_port, labtrack_server_available, start_labtrack, stop

needs_labtrack = pytest.mark.skipif(bool(labtrack_server_available()),
                                    reason=labtrack_server_available() or "")


@pytest.fixture
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)


def test_auth_header_from_the_environment(monkeypatch: pytest.MonkeyPatch, no_client_env) -> None:
    assert auth_header_from_env() is None
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "mtok")
    assert auth_header_from_env() == "Bearer mtok"
    monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", "ltok")
    assert auth_header_from_env() == "Bearer ltok"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")  # Basic wins, as in MLflow
    assert auth_header_from_env() == "Basic " + base64.b64encode(b"ann:s3cret").decode()


def test_unix_uri_round_trip() -> None:
    uri = unix_uri("/tmp/a dir/srv.sock")
    assert uri == "http+unix://%2Ftmp%2Fa%20dir%2Fsrv.sock"
    assert parse_unix_uri(uri + "/prefix") == ("/tmp/a dir/srv.sock", "/prefix")


def test_keep_alive_reuses_one_connection(server) -> None:
    transport = Transport.from_uri(server.uri)
    transport.call("GET", "experiments/get", {"experiment_id": "0"})
    sock = transport._local.conn.sock
    for _ in range(20):
        transport.call("GET", "experiments/get", {"experiment_id": "0"})
    assert transport._local.conn.sock is sock


@needs_labtrack
def test_token_is_required_and_sent(tracking_server, no_client_env,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if tracking_server.kind != "labtrack":
        pytest.skip("mlflow server has no authentication by default")
    with pytest.raises(Unauthenticated):
        lt.Client(tracking_server.uri).search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tracking_server.token)
    assert lt.Client(tracking_server.uri).get_experiment("0").name


@needs_labtrack
def test_unix_socket_transport(no_client_env) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lt-sock-"))  # short: socket paths max ~100 bytes
    os.chmod(workdir, 0o700)
    sock = workdir / "s.sock"
    server = start_labtrack(workdir, "--unix-socket", str(sock), token=None)
    try:
        for uri in (unix_uri(str(sock)), str(sock)):  # the URI, or the record's raw path
            client = lt.Client(uri)
            exp_id = client.create_experiment(f"sock-{uri[-6:]}-{time.time_ns()}")
            run = client.create_run(exp_id)
            client.log_metric(run.info.run_id, "m", 1.0)
            client.log_text(run.info.run_id, "over a socket", "s.txt")
            client.set_terminated(run.info.run_id)
            got = client.get_run(run.info.run_id)
            assert got.data.metrics == {"m": 1.0} and got.info.status == "FINISHED"
            local = client.download_artifacts(run.info.run_id, "s.txt", workdir / "dl")
            assert Path(local).read_text() == "over a socket"
        record = read_owner(workdir / "l.db")
        if record is not None and record.unix_socket:
            # Found through the database's ownership record: the socket is preferred.
            client = lt.Client(f"sqlite:///{workdir / 'l.db'}")
            assert client.tracking_uri.startswith("http+unix://")
            assert client.get_experiment("0")
    finally:
        stop(server.proc)


@needs_labtrack
def test_retries_until_the_server_comes_up(tmp_path: Path, no_client_env) -> None:
    port = free_port()
    proc_box: list[subprocess.Popen] = []

    def start_later() -> None:
        time.sleep(1.5)
        proc_box.append(subprocess.Popen(
            [sys.executable, "-m", "labtrack", "server", "--backend-store-uri",
             f"sqlite:///{tmp_path}/r.db", "--artifacts-destination", str(tmp_path / "art"),
             "--port", str(port), "--no-token"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    starter = threading.Thread(target=start_later)
    starter.start()
    try:
        client = lt.Client(f"http://127.0.0.1:{port}")
        assert client.get_experiment("0").experiment_id == "0"
    finally:
        starter.join()
        for proc in proc_box:
            stop(proc)


def test_unreachable_server_is_a_transient_error(no_client_env) -> None:
    transport = Transport.from_uri(f"http://127.0.0.1:{free_port()}")
    transport.retry.max_retries = 2
    with pytest.raises(TransientError):
        transport.call("GET", "experiments/get", {"experiment_id": "0"})

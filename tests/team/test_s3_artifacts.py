"""Artifacts in an S3-compatible bucket, proxied and direct, against mlflow server configured the same.

The unmodified mlflow client (with its own boto3 in direct mode) runs one
artifact workload (a file, a folder, a 50 MB file, a model and ``load_model``)
against ``mlflow server`` and ``labtrack server``; both must observe the same,
and the bucket must hold the same keys (run, experiment and model ids aside).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client.conftest import stop, wait_healthy
from tests.servers import free_port
from tests.team.conftest import S3Server, labtrack_cmd, launch, mlflow_cmd

BUCKET = "team-artifacts"
BIG = 50 << 20  # the 50 MB file


class Server:
    def __init__(self, kind: str, mode: str, url: str, token: str | None, proc: subprocess.Popen[bytes],
                 log: Path, prefix: str, workdir: Path) -> None:
        self.kind, self.mode, self.url, self.token = kind, mode, url, token
        self.proc, self.log, self.prefix, self.workdir = proc, log, prefix, workdir


@pytest.fixture(scope="module")
def servers(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """mlflow and labtrack, each proxied (--artifacts-destination s3://) and direct (--no-serve-artifacts)."""
    s3_server.client().create_bucket(Bucket=BUCKET)
    started: dict[str, Server] = {}
    for kind in ("mlflow", "labtrack"):
        for mode in ("proxied", "direct"):
            workdir = tmp_path_factory.mktemp(f"{kind}-{mode}")
            port = free_port()
            prefix = f"{kind}-{mode}"
            uri = f"s3://{BUCKET}/{prefix}"
            flags = (["--artifacts-destination", uri] if mode == "proxied"
                     else ["--default-artifact-root", uri, "--no-serve-artifacts"])
            token = secrets.token_hex(8) if kind == "labtrack" else None
            if kind == "mlflow":
                cmd = mlflow_cmd(workdir, port, *flags)
            else:
                cmd = labtrack_cmd(workdir, port, "--token", str(token), *flags)
            proc, log = launch(cmd, workdir, s3_server.env(), kind)
            started[f"{kind}-{mode}"] = Server(kind, mode, f"http://127.0.0.1:{port}", token, proc, log,
                                               prefix, workdir)
    try:
        for server in started.values():
            wait_healthy(server.url, server.proc, server.log, 300)
        yield started
    finally:
        for server in started.values():
            stop(server.proc)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _walk(client: Any, run_id: str, path: str | None = None) -> list[tuple[str, bool, int | None]]:
    out = []
    for f in client.list_artifacts(run_id, path):
        out.append((f.path, f.is_dir, None if f.is_dir else f.file_size))
        if f.is_dir:
            out += _walk(client, run_id, f.path)
    return out


def workload(server: Server, files: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path) -> dict[str, Any]:
    """What the mlflow client observes of one artifact workload, and the ids it made."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    if server.token:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient(server.url)
    exp_id = client.create_experiment(f"s3-{uuid.uuid4().hex[:8]}")
    X = np.arange(12, dtype=float).reshape(6, 2)
    model = LinearRegression().fit(X, X @ np.array([1.5, -2.0]) + 3)
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_artifact(str(files / "notes.txt"))
        mlflow.log_artifacts(str(files / "folder"), artifact_path="folder")
        mlflow.log_artifact(str(files / "big.bin"), artifact_path="big")
        info = mlflow.sklearn.log_model(model, name="model")
    run_id = run.info.run_id
    listing = _walk(client, run_id)
    out = tmp / f"download-{server.kind}-{server.mode}"
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(out)))
    hashes = {p.relative_to(local).as_posix(): _sha(p) for p in sorted(local.rglob("*")) if p.is_file()}
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    preds = [round(float(v), 9) for v in loaded.predict(X)]
    model_files = sorted(f.path for f in client.list_logged_model_artifacts(info.model_id)) \
        if hasattr(client, "list_logged_model_artifacts") else []
    mlflow.set_tracking_uri(None)
    return {"listing": sorted(listing), "hashes": hashes, "predictions": preds, "model_files": model_files,
            "ids": {"run": run_id, "exp": exp_id, "model": info.model_id}}


def _normalized_keys(s3: S3Server, server: Server, ids: dict[str, str]) -> list[str]:
    keys = s3.keys(BUCKET, server.prefix + "/")
    out = []
    for key in keys:
        key = key[len(server.prefix) + 1:]
        key = key.replace(ids["run"], "<run>").replace(ids["model"], "<model>")
        key = re.sub(rf"^{re.escape(ids['exp'])}/", "<exp>/", key)
        out.append(key)
    return sorted(out)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3-files")
    (root / "notes.txt").write_text("hello from the bucket\n")
    (root / "folder" / "sub").mkdir(parents=True)
    (root / "folder" / "a.csv").write_text("x,y\n1,2\n")
    (root / "folder" / "sub" / "b.json").write_text('{"b": 1}')
    with open(root / "big.bin", "wb") as f:
        for i in range(BIG >> 20):
            f.write(hashlib.sha256(str(i).encode()).digest() * (1 << 15))
    return root


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_mlflow_client_sees_the_same_on_s3(mode: str, servers: dict[str, Server], files: Path,
                                           s3_env: S3Server, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    reference = servers[f"mlflow-{mode}"]
    ours = servers[f"labtrack-{mode}"]
    want = workload(reference, files, monkeypatch, tmp_path)
    got = workload(ours, files, monkeypatch, tmp_path)
    for field in ("listing", "hashes", "predictions", "model_files"):
        assert got[field] == want[field], field
    assert got["hashes"]["big/big.bin"] == _sha(files / "big.bin")
    # The bucket holds exactly the keys mlflow's server leaves, ids aside.
    assert _normalized_keys(s3_env, ours, got["ids"]) == _normalized_keys(s3_env, reference, want["ids"])
    # A remote destination never turns into a local folder.
    assert not any(p.name in ("s3:", "mlruns") for p in ours.workdir.iterdir()), list(ours.workdir.iterdir())


def test_proxied_keys_are_confined_to_the_prefix(servers: dict[str, Server], s3_env: S3Server) -> None:
    server = servers["labtrack-proxied"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.token}"
    base = server.url + "/api/2.0/mlflow-artifacts/artifacts/"
    for bad in ("..%2F..%2Fescaped.txt", "x/%2e%2e/%2e%2e/%2e%2e/escaped.txt", "%252e%252e/escaped.txt"):
        reply = session.put(base + bad, data=b"nope", timeout=30)
        assert reply.status_code == 400, (bad, reply.status_code, reply.text)
        assert reply.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    ok = session.put(base + "confined/file.txt", data=b"yes", timeout=30)
    assert ok.status_code == 200, ok.text
    assert session.get(base + "confined/file.txt", timeout=30).content == b"yes"
    listing = session.get(base, params={"path": "confined"}, timeout=30).json()
    assert listing == {"files": [{"path": "file.txt", "is_dir": False, "file_size": 3}]}
    keys = s3_env.keys(BUCKET)
    assert not any("escaped" in k for k in keys)
    assert f"{server.prefix}/confined/file.txt" in keys
    assert session.delete(base + "confined", timeout=30).status_code == 200
    assert f"{server.prefix}/confined/file.txt" not in s3_env.keys(BUCKET)


def test_lt_reads_and_writes_s3_in_direct_mode(servers: dict[str, Server], s3_env: S3Server,
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import labtrack as lt
    from tests.client_state import reset_client_state

    server = servers["labtrack-direct"]
    reset_client_state()
    monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", str(server.token))
    lt.set_tracking_uri(server.url)
    try:
        client = lt.Client(server.url)
        exp = client.create_experiment(f"lt-s3-{uuid.uuid4().hex[:8]}")
        run = client.create_run(exp)
        assert run.info.artifact_uri.startswith(f"s3://{BUCKET}/{server.prefix}/")
        src = tmp_path / "weights.txt"
        src.write_text("w=1\n")
        client.log_artifact(run.info.run_id, str(src), "ckpt")
        assert [f.path for f in client.list_artifacts(run.info.run_id, "ckpt")] == ["ckpt/weights.txt"]
        back = Path(client.download_artifacts(run.info.run_id, "ckpt/weights.txt", str(tmp_path / "dl")))
        assert back.read_text() == "w=1\n"
        # The UI's listing and download read the bucket through the server.
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.token}"
        listed = session.get(server.url + "/ajax-api/2.0/mlflow/artifacts/list",
                             params={"run_id": run.info.run_id, "path": "ckpt"}, timeout=30).json()
        assert [f["path"] for f in listed["files"]] == ["ckpt/weights.txt"]
        body = session.get(server.url + "/get-artifact",
                           params={"run_uuid": run.info.run_id, "path": "ckpt/weights.txt"}, timeout=30)
        assert body.status_code == 200 and body.content == b"w=1\n"
        traversal = session.get(server.url + "/get-artifact",
                                params={"run_uuid": run.info.run_id, "path": "../../escape"}, timeout=30)
        assert traversal.status_code == 400
    finally:
        reset_client_state()


def test_unservable_scheme_is_refused_in_one_line(tmp_path: Path) -> None:
    for flags in (["--artifacts-destination", "gs://bucket/x"],
                  ["--default-artifact-root", "wasbs://c@a.blob.core.windows.net/x", "--no-serve-artifacts"]):
        out = subprocess.run(labtrack_cmd(tmp_path, free_port(), "--no-token", *flags), cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "s3://" in lines[0], out.stderr
    assert not (tmp_path / "gs:").exists()


def test_proxied_upload_and_download_stream(servers: dict[str, Server], s3_env: S3Server) -> None:
    """A 96 MB file through the proxy: the server's memory grows by far less than the file.

    A warm-up upload first, so that what is measured is the transfer, not boto3's first
    multipart upload setting itself up.
    """
    import threading

    import psutil

    server = servers["labtrack-proxied"]
    size = 96 << 20
    proc = psutil.Process(server.proc.pid)
    url = server.url + "/api/2.0/mlflow-artifacts/artifacts/streamed/big.bin"
    headers = {"Authorization": f"Bearer {server.token}"}

    def body(mb: int) -> Iterator[bytes]:
        block = hashlib.sha256(b"stream").digest() * (1 << 15)  # 1 MiB
        for _ in range(mb):
            yield block

    assert requests.put(url, data=body(16), headers=headers, timeout=300).status_code == 200
    base_rss = proc.memory_info().rss
    peak = [base_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        assert requests.put(url, data=body(size >> 20), headers=headers, timeout=300).status_code == 200
        got = 0
        with requests.get(url, headers=headers, stream=True, timeout=300) as reply:
            for chunk in reply.iter_content(1 << 20):
                got += len(chunk)
        assert got == size
    finally:
        done.set()
        sampler.join()
    grown_mb = (peak[0] - base_rss) / (1 << 20)
    assert grown_mb < 48, f"the server grew by {grown_mb:.0f} MB for a 96 MB file"
    head = s3_env.client().head_object(Bucket=BUCKET, Key=f"{server.prefix}/streamed/big.bin")
    assert head["ContentLength"] == size
    assert "-" in head["ETag"]  # a multipart upload's ETag: the parts went out as they came


@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_ui_lists_and_previews_s3_artifacts(mode: str, servers: dict[str, Server], s3_env: S3Server,
                                           browser: Any) -> None:
    """The run page's artifact browser, in Chromium, on a bucket as on a folder."""
    server = servers[f"labtrack-{mode}"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.token}"
    api = server.url + "/api/2.0/mlflow/"
    exp = session.post(api + "experiments/create", json={"name": f"ui-{uuid.uuid4().hex[:6]}"},
                       timeout=30).json()["experiment_id"]
    run = session.post(api + "runs/create", json={"experiment_id": exp}, timeout=30).json()["run"]["info"]
    files = {"notes.txt": b"seen in the bucket <b>not bold</b>\n", "sub/table.csv": b"epoch,loss\n1,0.5\n"}
    for rel, data in files.items():
        if mode == "proxied":
            rel_uri = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
            assert session.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{rel_uri}/{rel}", data=data,
                               timeout=30).status_code == 200
        else:
            bucket, _, prefix = run["artifact_uri"][len("s3://"):].partition("/")
            s3_env.client().put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{server.url}/?token={server.token}")
        page.evaluate("h => { location.hash = h }", f"#/runs/{run['run_id']}?tab=artifacts")
        page.click(".art-file[data-path='notes.txt']", timeout=30_000)
        page.wait_for_selector(".preview-text", timeout=30_000)
        assert "seen in the bucket <b>not bold</b>" in page.locator(".preview-text").inner_text()
        page.click(".art-dir[data-path='sub']")
        page.click(".art-file[data-path='sub/table.csv']")
        page.wait_for_selector(".csv-table", timeout=30_000)
        assert page.locator(".csv-table th").all_inner_texts() == ["epoch", "loss"]
    finally:
        context.close()

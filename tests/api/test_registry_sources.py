"""Model-version sources are confined to the server's artifact store (CVE-2023-1177 class).

Every refused source must be a 400 INVALID_PARAMETER_VALUE that leaves the
database exactly as it was; the accepted forms register versions whose
download URI points where the client can fetch the files from this server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, select

from tests.servers import ServerProcess, start_server


def _ok(reply: Any) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    return reply.json()


def _world(server: ServerProcess, tag: str) -> dict[str, Any]:
    """Two runs, two logged models and a registered model with version 1 and an alias."""
    runs = [_ok(server.api("POST", "runs/create", {"experiment_id": "0"}))["run"]["info"] for _ in range(2)]
    models = [_ok(server.api("POST", "logged-models", {
        "experiment_id": "0", "name": "model", "source_run_id": runs[0]["run_id"]}))["model"]["info"]
        for _ in range(2)]
    name = f"victim-{tag}"
    _ok(server.api("POST", "registered-models/create", {"name": name}))
    _ok(server.api("POST", "model-versions/create", {
        "name": name, "source": f"models:/{models[0]['model_id']}", "model_id": models[0]["model_id"]}))
    _ok(server.api("POST", "registered-models/alias", {"name": name, "alias": "champion", "version": "1"}))
    return {"name": name, "run": runs[0], "run_b": runs[1], "model": models[0], "model_b": models[1]}


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read by the test process itself."""
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
                    for name, table in sorted(meta.tables.items())}
    finally:
        engine.dispose()


def _refused_corpus(w: dict[str, Any], server_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(source, extra request fields) pairs that must all be refused."""
    run_id, run_uri = w["run"]["run_id"], w["run"]["artifact_uri"]
    model_id, run_b = w["model"]["model_id"], w["run_b"]["run_id"]
    fake_run, fake_model = "0123456789abcdef0123456789abcdef", "m-" + "0" * 32
    plain: list[str] = [
        # local paths and file URIs
        "/etc/passwd", "/tmp", "../../../etc/passwd", "./mlruns/0", "mlruns/0/model", "~/.ssh/id_rsa",
        "C:\\Windows\\System32", "file:///etc/passwd", "file:/etc/passwd", "FILE:///etc/passwd",
        "file://localhost/etc/passwd", f"file://{run_uri}", " /etc/passwd", "dummy-source",
        # the artifact proxy with traversal, encoded and double-encoded
        "mlflow-artifacts:/../../../etc/passwd", "mlflow-artifacts:/0/../../etc/passwd",
        "mlflow-artifacts:/0/..%2f..%2f..%2fetc/passwd", "mlflow-artifacts:/%2e%2e/%2e%2e/etc/passwd",
        "mlflow-artifacts:/%252e%252e/%252e%252e/etc/passwd", "mlflow-artifacts:/0/%25252e%25252e/x",
        "mlflow-artifacts:/0/%2E%2E%5C%2E%2E%5Cetc", "mlflow-artifacts:/0/model%00.pkl",
        "mlflow-artifacts:/0/..\\..\\etc", "mlflow-artifacts:/0/\uff0e\uff0e/\uff0e\uff0e/etc",
        "mlflow-artifacts:/0/%c0%ae%c0%ae/etc", "mlflow-artifacts:/0/model\n/../../etc",
        "mlflow-artifacts:/", "mlflow-artifacts:0/model", "mlflow-artifacts://evil.example.com/0/model",
        # query and fragment tricks
        "mlflow-artifacts:/0/model?x=/../../etc/passwd", "mlflow-artifacts:/0/model#/../../etc",
        "mlflow-artifacts:/0/model%3F/../../etc", f"models:/{model_id}?x=1", f"runs:/{run_id}/model#x",
        # foreign hosts and other stores
        "http://evil.example.com/model", "https://evil.example.com/api/2.0/mlflow-artifacts/artifacts/0/m",
        f"{server_url}/api/2.0/mlflow-artifacts/artifacts/../../etc", "s3://attacker-bucket/model",
        "gs://bucket/model", "hdfs://namenode/model", "ftp://host/model", "dbfs:/model", "sftp://h/m",
        "javascript:alert(1)", "//evil.example.com/model",
        # runs:/ with traversal, a missing run, a host
        f"runs:/{run_id}/../../../etc/passwd", f"runs:/{run_id}/%2e%2e/%2e%2e/etc", f"runs:/{run_id}//etc/passwd",
        f"runs:/{fake_run}/model", "runs://host/run/model", "runs:/../model",
        # models:/ naming nothing, or with a path or a host
        f"models:/{fake_model}", f"models://evil/{model_id}", f"models:/{model_id}/../../x",
        f"models:/{w['name']}/99", f"models:/{w['name']}@nobody", "models:/no-such-model/1", "models:/",
    ]
    cases: list[tuple[str, dict[str, Any]]] = [(src, {}) for src in plain]
    cases += [
        (f"{run_uri}/../../../etc", {"run_id": run_id}),                    # under the run, then out
        (f"runs:/{run_id}/model", {"run_id": run_b}),                       # run_id disagrees
        (f"models:/{model_id}", {"model_id": w["model_b"]["model_id"]}),    # model_id disagrees
        ("mlflow-artifacts:/0/x/model", {"run_id": fake_run}),              # an unknown run
        ("mlflow-artifacts:/0/x/model", {"model_id": fake_model}),          # an unknown logged model
        (5, {}),                                                            # not a string
        ("", {}),
    ]
    return cases


def test_refused_sources_leave_the_database_unchanged(module_server: ServerProcess) -> None:
    w = _world(module_server, "refused")
    corpus = _refused_corpus(w, module_server.url)
    assert len(corpus) >= 25
    before = _snapshot(module_server.backend_uri)
    wrong = []
    for source, extra in corpus:
        reply = module_server.api("POST", "model-versions/create", {"name": w["name"], "source": source, **extra})
        body = reply.json() if reply.headers.get("Content-Type", "").startswith("application/json") else {}
        if reply.status_code != 400 or body.get("error_code") != "INVALID_PARAMETER_VALUE":
            wrong.append((source, extra, reply.status_code, reply.text[:200]))
    assert wrong == []
    assert _snapshot(module_server.backend_uri) == before
    versions = _ok(module_server.api("GET", "model-versions/search", {"filter": f"name = '{w['name']}'"}))
    assert [v["version"] for v in versions["model_versions"]] == ["1"]


def _download_uri(server: ServerProcess, name: str, version: str) -> str:
    return _ok(server.api("GET", "model-versions/get-download-uri", {"name": name, "version": version}))["artifact_uri"]


def test_accepted_sources(module_server: ServerProcess) -> None:
    w = _world(module_server, "accepted")
    run_id, run_uri = w["run"]["run_id"], w["run"]["artifact_uri"]
    model_id, model_uri = w["model"]["model_id"], w["model"]["artifact_uri"]
    name = w["name"]
    # (request fields, stored source, run_id, model_id, download URI)
    cases: list[tuple[dict[str, Any], str, str | None, str | None, str]] = [
        ({"source": f"models:/{model_id}"}, f"models:/{model_id}", run_id, model_id, model_uri),
        ({"source": f"runs:/{run_id}/model"}, f"runs:/{run_id}/model", run_id, None, f"runs:/{run_id}/model"),
        ({"source": f"runs:/{run_id}"}, f"runs:/{run_id}", run_id, None, f"runs:/{run_id}"),
        ({"source": "mlflow-artifacts:/0/any/model"}, "mlflow-artifacts:/0/any/model", None, None,
         "mlflow-artifacts:/0/any/model"),
        ({"source": f"{run_uri}/model", "run_id": run_id}, f"{run_uri}/model", run_id, None, f"{run_uri}/model"),
        ({"source": model_uri, "model_id": model_id}, model_uri, None, model_id, model_uri),
        ({"source": f"models:/{name}/1"}, f"models:/{name}/1", run_id, model_id, model_uri),
        ({"source": f"models:/{name}@champion"}, f"models:/{name}/1", run_id, model_id, model_uri),
        # the newest version in stage None is then 9 (the copy just above), a chain of two
        ({"source": f"models:/{name}/none"}, f"models:/{name}/9", run_id, model_id, model_uri),
        ({"source": "dummy-source", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]},
         "dummy-source", None, None, "dummy-source"),
    ]
    for i, (fields, source, run, model, download) in enumerate(cases, start=2):
        mv = _ok(module_server.api("POST", "model-versions/create", {"name": name, **fields}))["model_version"]
        assert (mv["version"], mv["status"], mv["current_stage"]) == (str(i), "READY", "None")
        assert (mv["source"], mv.get("run_id"), mv.get("model_id")) == (source, run, model), fields
        assert _download_uri(module_server, name, str(i)) == download, fields


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_default_artifact_root_elsewhere(kind: str, tmp_path: Path) -> None:
    """With a non-proxy default root, URIs under that root (and only those) are accepted."""
    root = str(tmp_path / "store") if kind == "local" else "s3://team-bucket/labtrack"
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path, extra=["--default-artifact-root", root])
    try:
        run = _ok(srv.api("POST", "runs/create", {"experiment_id": "0"}))["run"]["info"]
        assert run["artifact_uri"].startswith(root + "/0/")
        _ok(srv.api("POST", "registered-models/create", {"name": "m"}))
        good = [f"{run['artifact_uri']}/model", f"{root}/0/other/model"]
        bad = [root, f"{root}/../x", f"{root}2/x", f"{root}/0/%2e%2e/%2e%2e/x", f"{root}/0/model?a=b",
               f"{root}/0/..%252f..%252fx"]
        if kind == "local":
            bad += [f"file://{root}/0/model", str(tmp_path / "elsewhere" / "model")]
        else:
            bad += ["s3://team-bucket/other/model", "s3://evil/labtrack/0/model", "s3:/team-bucket/labtrack/0/m"]
        before = _snapshot(srv.backend_uri)
        for source in bad:
            reply = srv.api("POST", "model-versions/create", {"name": "m", "source": source})
            assert (reply.status_code, reply.json().get("error_code")) == (400, "INVALID_PARAMETER_VALUE"), source
        assert _snapshot(srv.backend_uri) == before
        for i, source in enumerate(good, start=1):
            mv = _ok(srv.api("POST", "model-versions/create", {"name": "m", "source": source}))["model_version"]
            assert (mv["version"], mv["source"]) == (str(i), source)
    finally:
        srv.stop()

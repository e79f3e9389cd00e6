"""``GET /api/2.0/labtrack/media/images``: a run's per-step images by key, from one listing.

The file names are the ones mlflow.log_image(key=, step=) writes (MLflow 3's ``+`` layout and
the older ``%`` one); over HTTP a real server answers for images lt.log_image logged, bad
input gets MLflow's JSON error shape, and on a basic-auth server the answer needs READ on the
run's experiment.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from labtrack.server.api_media import image_series
from tests.client_state import reset_client_state
from tests.servers import ServerProcess, start_server

pytestmark = pytest.mark.timeout(300)


def test_file_names_group_into_series_by_key_and_step() -> None:
    names = [
        "samples+step+2+timestamp+200+b.png", "samples+step+2+timestamp+200+b+compressed.webp",
        "samples+step+0+timestamp+100+a.png", "samples+step+0+timestamp+100+a+compressed.webp",
        "samples+step+2+timestamp+300+c.png",  # step 2 again, later: it wins (no small copy)
        "val~examples+step+5+timestamp+1+d.png",  # "/" in a key is written "~" (MLflow 3)
        "old%step%7%timestamp%9%e.png", "old%step%7%timestamp%9%e%compressed.webp",  # MLflow 2.x
        "notes.txt", "plot.png", "x+step+y+timestamp+1+z.png",
    ]
    series = image_series(names)
    assert [s["key"] for s in series] == ["old", "samples", "val/examples"]
    old, samples, val = series
    assert old["steps"] == [{"step": 7, "timestamp": 9, "path": "images/old%step%7%timestamp%9%e.png",
                             "compressed": "images/old%step%7%timestamp%9%e%compressed.webp"}]
    assert [(s["step"], s["path"], s["compressed"]) for s in samples["steps"]] == [
        (0, "images/samples+step+0+timestamp+100+a.png", "images/samples+step+0+timestamp+100+a+compressed.webp"),
        (2, "images/samples+step+2+timestamp+300+c.png", None)]
    assert val["steps"][0]["step"] == 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("media")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir)
    yield srv
    srv.stop()


def test_endpoint_answers_the_steps_lt_logged(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL", reason="Pillow is not installed")
    import labtrack as lt

    monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", server.token or "")
    reset_client_state()
    try:
        lt.set_tracking_uri(server.url)
        lt.set_experiment("media-api")
        with lt.start_run() as run:
            for step in (3, 1):
                lt.log_image(np.zeros((8, 8, 3), dtype=np.uint8), key="a/b", step=step)
        lt.flush()
    finally:
        reset_client_state()
    r = server.api("GET", "/api/2.0/labtrack/media/images", {"run_id": run.info.run_id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == run.info.run_id
    assert [s["key"] for s in body["images"]] == ["a/b"]
    steps = body["images"][0]["steps"]
    assert [s["step"] for s in steps] == [1, 3]
    for s in steps:
        assert s["path"].startswith("images/a~b+step+") and s["path"].endswith(".png")
        assert s["compressed"].endswith("+compressed.webp")
        got = server.session.get(f"{server.url}/get-artifact", params={"run_id": run.info.run_id, "path": s["path"]}, timeout=30)
        assert got.status_code == 200 and got.content.startswith(b"\x89PNG")

    # a run with no images/ folder: no series
    empty = server.api("POST", "runs/create", {"experiment_id": run.info.experiment_id}).json()["run"]["info"]["run_id"]
    assert server.api("GET", "/api/2.0/labtrack/media/images", {"run_id": empty}).json() == {"run_id": empty, "images": []}


def test_bad_requests_get_mlflow_error_shapes(server: ServerProcess) -> None:
    r = server.api("GET", "/api/2.0/labtrack/media/images", {})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = server.api("GET", "/api/2.0/labtrack/media/images", {"run_id": "0" * 32})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


ADMIN = ("admin", "admin-Secret-4821")
ALICE = ("alice", "alice-Secret-7302")
BOB = ("bob", "bob-Secret-5519")


def test_team_server_answers_only_readers_of_the_experiment(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'mlruns.db'}"
    made = subprocess.run([sys.executable, "-m", "labtrack", "users", "create", ADMIN[0], "--admin",
                           "--password-stdin", "--backend-store-uri", db],
                          input=ADMIN[1] + "\n", capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    srv = start_server(db, tmp_path, token=None, extra=["--app-name", "basic-auth"], timeout=120)
    try:
        def call(who: tuple[str, str], method: str, path: str, body: Any = None) -> requests.Response:
            if method == "GET":
                return requests.get(srv.url + path, params=body, auth=who, timeout=30)
            return requests.request(method, srv.url + path, json=body, auth=who, timeout=30)

        for who in (ALICE, BOB):
            assert call(ADMIN, "POST", "/api/2.0/mlflow/users/create", {"username": who[0], "password": who[1]}).ok
        exp_id = call(ALICE, "POST", "/api/2.0/mlflow/experiments/create", {"name": f"m-{uuid.uuid4().hex[:6]}"}).json()["experiment_id"]
        info = call(ALICE, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp_id}).json()["run"]["info"]
        rel = info["artifact_uri"].split("mlflow-artifacts:/", 1)[1].strip("/")
        name = "k+step+1+timestamp+5+u.png"
        put = requests.put(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{rel}/images/{name}", data=b"\x89PNG",
                           auth=ALICE, timeout=30)
        assert put.status_code == 200, put.text
        media = {"run_id": info["run_id"]}
        # bob has the server's default permission (READ)
        assert call(BOB, "GET", "/api/2.0/labtrack/media/images", media).json()["images"][0]["key"] == "k"
        path = "/api/2.0/mlflow/users/permissions/"
        assert call(ALICE, "POST", path + "grant", {"username": "bob", "resource_type": "experiment",
                                                    "resource_id": exp_id, "permission": "DENY"}).ok
        denied = call(BOB, "GET", "/api/2.0/labtrack/media/images", media)
        assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED", denied.text
        assert call(ALICE, "GET", "/api/2.0/labtrack/media/images", media).status_code == 200
    finally:
        srv.stop()

"""Item 6 of issue #19: an experiment's artifact_location and a model version's source stay in the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ServerProcess, start_server

OUTSIDE = ["file:///etc", "/etc", "file:///tmp/x", "relative/path", "./mlruns/x", "mlflow-artifacts:/#",
           "mlflow-artifacts:/x#y", "mlflow-artifacts:/x?y=1", "mlflow-artifacts:/a/../../b",
           "mlflow-artifacts:/a/%2e%2e/%2e%2e/b", "mlflow-artifacts:/", "mlflow-artifacts://evil.example/x",
           "s3://someone-elses-bucket/x", "http://evil.example/x", "#", "?", ".."]


@pytest.mark.parametrize("location", OUTSIDE)
def test_artifact_location_outside_the_store_is_refused(server: ServerProcess, location: str) -> None:
    reply = server.api("POST", "experiments/create", {"name": f"loc {location}", "artifact_location": location})
    assert reply.status_code == 400, (location, reply.text)
    assert reply.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_artifact_location_inside_the_proxy_is_kept(server: ServerProcess) -> None:
    reply = server.api("POST", "experiments/create", {"name": "team-loc", "artifact_location": "mlflow-artifacts:/team/a"})
    assert reply.status_code == 200, reply.text
    exp = reply.json()["experiment_id"]
    run = server.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]
    assert run["artifact_uri"].startswith("mlflow-artifacts:/team/a/")


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Artifacts not proxied: the default root is a local folder, so local locations are possible."""
    workdir = tmp_path_factory.mktemp("localroot")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir, extra=["--no-serve-artifacts"])
    try:
        yield srv
    finally:
        srv.stop()


def test_local_location_is_resolved_on_disk(local_server: ServerProcess, tmp_path: Path) -> None:
    root = local_server.artifacts
    root.mkdir(parents=True, exist_ok=True)
    (tmp_path / "secret").mkdir()
    link = root / "escape"
    os.symlink(tmp_path / "secret", link)
    inside = local_server.api("POST", "experiments/create",
                              {"name": "inside", "artifact_location": str(root / "team" / "x")})
    assert inside.status_code == 200, inside.text
    through_link = local_server.api("POST", "experiments/create",
                                    {"name": "via-link", "artifact_location": str(link / "x")})
    assert through_link.status_code == 400, through_link.text
    as_uri = local_server.api("POST", "experiments/create",
                              {"name": "via-link-uri", "artifact_location": f"file://{link}/x"})
    assert as_uri.status_code == 400, as_uri.text


def test_model_version_source_through_a_symlink_is_refused(local_server: ServerProcess, tmp_path: Path) -> None:
    root = local_server.artifacts
    exp = local_server.api("POST", "experiments/create", {"name": "mv-src"}).json()["experiment_id"]
    run = local_server.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]
    run_root = Path(run["artifact_uri"].removeprefix("file://"))
    run_root.mkdir(parents=True, exist_ok=True)
    (tmp_path / "elsewhere" / "model").mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", run_root / "out")
    assert local_server.api("POST", "registered-models/create", {"name": "m"}).status_code == 200
    for source in (str(run_root / "out" / "model"), f"file://{run_root}/out/model"):
        reply = local_server.api("POST", "model-versions/create",
                                 {"name": "m", "source": source, "run_id": run["run_id"]})
        assert reply.status_code == 400, (source, reply.text)
    ok = local_server.api("POST", "model-versions/create",
                          {"name": "m", "source": str(run_root / "model"), "run_id": run["run_id"]})
    assert ok.status_code == 200, ok.text
    assert root in run_root.parents

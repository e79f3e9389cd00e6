"""``lt.Client`` (MlflowClient's method names) against real servers."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest

import labtrack as lt
from labtrack.entities import Metric, Param, RunTag
from labtrack.errors import ResourceAlreadyExists, ResourceDoesNotExist


@pytest.fixture
def client(server) -> lt.Client:
    return lt.Client(server.uri)


def test_experiment_lifecycle(client: lt.Client) -> None:
    name = f"c-{uuid.uuid4().hex}"
    exp_id = client.create_experiment(name, tags={"k": "v"})
    with pytest.raises(ResourceAlreadyExists):
        client.create_experiment(name)
    exp = client.get_experiment(exp_id)
    assert (exp.name, exp.tags, exp.lifecycle_stage) == (name, {"k": "v"}, "active")
    client.rename_experiment(exp_id, name + "-renamed")
    client.set_experiment_tag(exp_id, "k2", 2)
    client.delete_experiment_tag(exp_id, "k")
    exp = client.get_experiment_by_name(name + "-renamed")
    assert exp.experiment_id == exp_id and exp.tags == {"k2": "2"}
    client.delete_experiment(exp_id)
    deleted = client.search_experiments(view_type=lt.ViewType.DELETED_ONLY,
                                        filter_string=f"name = '{name}-renamed'")
    assert [e.experiment_id for e in deleted] == [exp_id]
    assert client.search_experiments(filter_string=f"name = '{name}-renamed'") == []
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    with pytest.raises(ResourceDoesNotExist):
        client.get_experiment("987654321")


def test_run_lifecycle(client: lt.Client, tmp_path: Path) -> None:
    exp_id = client.create_experiment(f"c-{uuid.uuid4().hex}")
    run = client.create_run(exp_id, tags={"a": "b"}, run_name="explicit")
    rid = run.info.run_id
    assert run.info.status == "RUNNING" and run.info.run_name == "explicit"
    assert run.data.tags["mlflow.runName"] == "explicit"
    assert run.info.artifact_uri.endswith(f"{rid}/artifacts")
    client.log_batch(rid, metrics=[Metric("x", 1.5, 1000, 3), Metric("x", 2.5, 1001, 4)],
                     params=[Param("p", "1")], tags=[RunTag("t", "u")])
    client.log_metric(rid, "inf", math.inf)
    client.log_metric(rid, "neg", -1.0, timestamp=5, step=2, synchronous=True)
    client.log_param(rid, "q", [1, 2])
    client.set_tag(rid, "gone", "x")
    client.delete_tag(rid, "gone")
    info = client.update_run(rid, name="renamed")
    assert info.run_name == "renamed"
    client.set_terminated(rid, "FAILED")
    got = client.get_run(rid)
    assert got.info.status == "FAILED" and got.info.run_name == "renamed"
    assert got.data.tags["mlflow.runName"] == "renamed"
    assert got.data.params == {"p": "1", "q": "[1, 2]"}
    assert got.data.metrics["x"] == 2.5 and got.data.metrics["neg"] == -1.0
    # MLflow stores +inf as the largest double; labtrack must give the same answer.
    assert got.data.metrics["inf"] in (math.inf, 1.7976931348623157e308)
    assert [(m.step, m.timestamp, m.value) for m in client.get_metric_history(rid, "x")] == [
        (3, 1000, 1.5), (4, 1001, 2.5)]
    assert got.data.tags["t"] == "u" and "gone" not in got.data.tags
    client.delete_run(rid)
    assert client.search_runs(exp_id) == []
    deleted = client.search_runs(exp_id, run_view_type=lt.ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [rid]
    client.restore_run(rid)
    assert [r.info.run_id for r in client.search_runs([exp_id], "params.p = '1'")] == [rid]
    with pytest.raises(ResourceDoesNotExist):
        client.get_run(uuid.uuid4().hex)


def test_client_artifacts_and_objects(client: lt.Client, tmp_path: Path) -> None:
    exp_id = client.create_experiment(f"c-{uuid.uuid4().hex}")
    rid = client.create_run(exp_id).info.run_id
    client.log_text(rid, "<b>hi</b>", "deep/er/page.html")
    client.log_dict(rid, {"k": [1, 2]}, "cfg/settings.json")
    assert [f.path for f in client.list_artifacts(rid)] == ["cfg", "deep"]
    assert [f.path for f in client.list_artifacts(rid, "deep/er")] == ["deep/er/page.html"]
    local = client.download_artifacts(rid, "deep", tmp_path)
    assert (Path(local) / "er" / "page.html").read_text() == "<b>hi</b>"
    assert client.get_artifact_uri(rid, "cfg/settings.json").endswith(
        f"{rid}/artifacts/cfg/settings.json")


def test_entities_read_well(client: lt.Client) -> None:
    exp_id = client.create_experiment(f"<script>{uuid.uuid4().hex}")
    run = client.create_run(exp_id, run_name="<img src=x onerror=alert(1)>")
    client.log_param(run.info.run_id, "html", "<script>alert(1)</script>", synchronous=True)
    run = client.get_run(run.info.run_id)
    assert "run_id=" in repr(run) and run.info.run_id in repr(run)
    html = run._repr_html_() + client.get_experiment(exp_id)._repr_html_()
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert repr(client).startswith("Client(")

"""The fluent API against real servers: the same scenario gives the same results on both."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import pytest

import labtrack as lt
from labtrack.errors import InvalidParameterValue, LabtrackError


def test_run_lifecycle_params_metrics_tags(server) -> None:
    with lt.start_run(run_name="first", tags={"team": "a"}, description="a note") as run:
        assert lt.active_run().info.run_id == run.info.run_id
        assert lt.log_param("alpha", 0.5) == 0.5
        lt.log_params({"beta": 2, "gamma": "g"})
        lt.log_metric("loss", 1.0, step=0)
        lt.log_metric("loss", 0.5, step=1)
        lt.log_metrics({"acc": 0.9, "nan": math.nan}, step=1)
        lt.set_tag("stage", "dev")
        lt.set_tags({"x": 1, "y": "two"})
        lt.set_tag("doomed", "soon")
        lt.delete_tag("doomed")
    assert lt.active_run() is None
    got = lt.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None and got.info.end_time >= got.info.start_time
    assert got.info.run_name == "first"
    assert got.data.params == {"alpha": "0.5", "beta": "2", "gamma": "g"}
    assert got.data.metrics["loss"] == 0.5
    assert got.data.metrics["acc"] == 0.9
    assert math.isnan(got.data.metrics["nan"])
    tags = got.data.tags
    assert tags["team"] == "a" and tags["stage"] == "dev" and tags["x"] == "1"
    assert tags["y"] == "two" and "doomed" not in tags
    assert tags["mlflow.runName"] == "first"
    assert tags["mlflow.note.content"] == "a note"
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"] and tags["mlflow.source.name"]
    # The git facts are those of the running program's checkout (pytest's, wherever the venv
    # lies), as MLflow records them; outside a checkout there are none.
    import subprocess
    from pathlib import Path

    where = Path(tags["mlflow.source.name"])
    head = subprocess.run(["git", "-C", str(where.parent if where.is_file() else Path.cwd()),
                           "rev-parse", "HEAD"], capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else None
    assert tags.get("mlflow.source.git.commit") == expected
    assert lt.last_active_run().info.run_id == run.info.run_id
    history = lt.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]


def test_synchronous_mode_gives_the_same_run(server) -> None:
    lt.set_async(False)
    with lt.start_run() as run:
        lt.log_param("p", "v")
        lt.log_metric("m", 3.0, step=7)
        lt.set_tag("t", "u")
        lt.log_metrics({"a": 1.0, "b": 2.0})
    got = lt.get_run(run.info.run_id)
    assert got.data.params == {"p": "v"}
    assert got.data.metrics == {"m": 3.0, "a": 1.0, "b": 2.0}
    assert got.data.tags["t"] == "u"
    with lt.start_run():
        with pytest.raises(InvalidParameterValue):
            lt.log_param("p", "1")
            lt.log_param("p", "2")  # raised at once in synchronous mode


def test_nested_runs(server) -> None:
    with lt.start_run(run_name="parent") as parent:
        with pytest.raises(LabtrackError, match="already active"):
            lt.start_run()
        with lt.start_run(run_name="child", nested=True) as child:
            assert lt.active_run().info.run_id == child.info.run_id
            lt.log_metric("inner", 1.0)
        assert lt.active_run().info.run_id == parent.info.run_id
    got_child = lt.get_run(child.info.run_id)
    assert got_child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert got_child.info.status == "FINISHED"
    children = lt.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [r.info.run_id for r in children] == [child.info.run_id]


def test_resume_run_by_id(server) -> None:
    with lt.start_run() as run:
        lt.log_metric("m", 1.0, step=0)
    with lt.start_run(run_id=run.info.run_id) as again:
        assert again.info.status == "RUNNING"
        lt.log_metric("m", 2.0, step=1)
    got = lt.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert [m.value for m in lt.get_metric_history(run.info.run_id, "m")] == [1.0, 2.0]


def test_logging_without_a_run_starts_one(server) -> None:
    lt.log_metric("auto", 1.0)
    run = lt.active_run()
    assert run is not None
    lt.end_run()
    assert lt.get_run(run.info.run_id).data.metrics == {"auto": 1.0}


def test_exception_marks_run_failed(server) -> None:
    with pytest.raises(ZeroDivisionError):
        with lt.start_run() as run:
            lt.log_metric("before", 1.0)
            1 / 0  # noqa: B018
    got = lt.get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.metrics == {"before": 1.0}


def test_explicit_end_run_status(server) -> None:
    run = lt.start_run()
    lt.end_run("KILLED")
    assert lt.get_run(run.info.run_id).info.status == "KILLED"


def test_artifacts_upload_list_download(server, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    one = tmp_path / "one.csv"
    one.write_text("x,y\n1,2\n")
    with lt.start_run() as run:
        lt.log_artifact(one)
        lt.log_artifact(one, artifact_path="tables")
        lt.log_artifacts(src, artifact_path="tree")
        lt.log_text("some text ünïcode", "notes/readme.txt")
        lt.log_dict({"a": 1, "b": [1, 2]}, "config.json")
    rid = run.info.run_id
    top = lt.list_artifacts(rid)
    assert [(f.path, f.is_dir) for f in top] == [
        ("config.json", False), ("notes", True), ("one.csv", False), ("tables", True),
        ("tree", True)]
    assert [f.path for f in lt.list_artifacts(rid, "tree")] == ["tree/a.txt", "tree/sub"]
    sizes = {f.path: f.file_size for f in lt.list_artifacts(rid, "tree/sub")}
    assert sizes == {"tree/sub/b.bin": 2560}
    dst = tmp_path / "dl"
    local = lt.download_artifacts(run_id=rid, artifact_path="tree", dst_path=dst)
    assert Path(local) == dst / "tree"
    assert (dst / "tree" / "a.txt").read_text() == "hello"
    assert (dst / "tree" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 10
    text = lt.download_artifacts(f"runs:/{rid}/notes/readme.txt", dst_path=tmp_path / "t")
    assert Path(text).read_text(encoding="utf-8") == "some text ünïcode"
    conf = lt.download_artifacts(run_id=rid, artifact_path="config.json", dst_path=tmp_path / "c")
    assert json.loads(Path(conf).read_text()) == {"a": 1, "b": [1, 2]}
    everything = Path(lt.download_artifacts(run_id=rid, dst_path=tmp_path / "all"))
    assert (everything / "tables" / "one.csv").read_text() == "x,y\n1,2\n"
    with pytest.raises(LabtrackError):
        lt.download_artifacts(run_id=rid, artifact_path="missing.txt", dst_path=tmp_path / "m")


def test_log_figure_and_image(server, tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    image = np.zeros((8, 12, 3), dtype=np.uint8)
    image[:, :6] = 255
    with lt.start_run() as run:
        lt.log_figure(fig, "plots/fig.png")
        lt.log_image(image, "images/half.png")
        lt.log_image(np.linspace(0, 1, 64).reshape(8, 8), "images/gray.png")
    plt.close(fig)
    files = [f.path for f in lt.list_artifacts(run.info.run_id, "images")]
    assert files == ["images/gray.png", "images/half.png"]
    local = Path(lt.download_artifacts(run_id=run.info.run_id, artifact_path="plots/fig.png",
                                       dst_path=tmp_path))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    half = plt.imread(lt.download_artifacts(run_id=run.info.run_id,
                                            artifact_path="images/half.png", dst_path=tmp_path))
    assert half.shape[:2] == (8, 12) and half[0, 0, 0] == 1.0 and half[0, 11, 0] == 0.0


def test_search_runs_filters_orders_and_pages(server) -> None:
    ids = []
    for i in range(5):
        with lt.start_run(run_name=f"r{i}") as run:
            lt.log_param("i", i)
            lt.log_metric("score", float(i))
            lt.set_tag("parity", "even" if i % 2 == 0 else "odd")
        ids.append(run.info.run_id)
    best = lt.search_runs(order_by=["metrics.score DESC"])
    assert [r.info.run_id for r in best] == ids[::-1]
    evens = lt.search_runs(filter_string="tags.parity = 'even' and metrics.score >= 2",
                           order_by=["metrics.score ASC"])
    assert [r.data.params["i"] for r in evens] == ["2", "4"]
    assert len(lt.search_runs(max_results=3)) == 3
    client = lt.Client(server.uri)
    exp_id = evens[0].info.experiment_id
    first = client.search_runs(exp_id, max_results=2, order_by=["metrics.score ASC"])
    assert first.token
    second = client.search_runs(exp_id, max_results=2, order_by=["metrics.score ASC"],
                                page_token=first.token)
    assert [r.info.run_id for r in first + second] == ids[:4]


def test_search_runs_as_pandas(server) -> None:
    pd = pytest.importorskip("pandas")
    with lt.start_run(run_name="tabled") as run:
        lt.log_param("lr", 0.1)
        lt.log_metric("acc", 0.75)
    frame = lt.search_runs(output_format="pandas")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:6]) == ["run_id", "experiment_id", "status", "artifact_uri",
                                      "start_time", "end_time"]
    row = frame.iloc[0]
    assert row["run_id"] == run.info.run_id
    assert row["metrics.acc"] == 0.75 and row["params.lr"] == "0.1"
    assert row["tags.mlflow.runName"] == "tabled" and row["status"] == "FINISHED"
    assert str(frame["start_time"].dtype).startswith("datetime64")


def test_experiments(server) -> None:
    assert lt.get_experiment_by_name(f"missing-{uuid.uuid4().hex}") is None
    exp = lt.set_experiment(f"named-{uuid.uuid4().hex}")
    assert lt.get_experiment_by_name(exp.name).experiment_id == exp.experiment_id
    assert exp.artifact_location.startswith("mlflow-artifacts:/")
    again = lt.set_experiment(exp.name)
    assert again.experiment_id == exp.experiment_id
    names = [e.name for e in lt.search_experiments(filter_string=f"name = '{exp.name}'")]
    assert names == [exp.name]
    lt.set_experiment_tag("owner", "me")
    assert lt.get_experiment(exp.experiment_id).tags["owner"] == "me"
    with lt.start_run() as run:
        pass
    assert run.info.experiment_id == exp.experiment_id
    assert [r.info.run_id for r in lt.search_runs(experiment_names=[exp.name])] == [run.info.run_id]

"""``labtrack models serve`` as a real process on a real port: every input format gets the
model's predictions; bad payloads get a 400 with MLflow's error JSON.  And
``generate-dockerfile``'s build context serves the same model with its own labtrack copy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

import labtrack as lt
from labtrack.client import fluent
from tests.servers import ServerProcess, free_port

COLUMNS = ["a", "b", "c"]
ROWS = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0], [2.0, 0.0, -3.0]]


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def post(self, body: Any, content_type: str = "application/json") -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return requests.post(self.url + "/invocations", data=data,
                             headers={"Content-Type": content_type}, timeout=60)


def start_serving(model_uri: str, workdir: Path, env: dict[str, str] | None = None,
                  cmd: list[str] | None = None) -> Served:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    cmd = cmd or [sys.executable, "-m", "labtrack", "models", "serve", "-m", model_uri,
                  "-p", str(port), "--host", "127.0.0.1"]
    full_env = dict(env or os.environ, PORT=str(port), HOST="127.0.0.1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                cwd=workdir, start_new_session=True)
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 180  # loading sklearn on a busy CI host takes a while
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if requests.get(served.url + "/ping", timeout=1).status_code == 200:
                return served
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    stop(served)
    raise RuntimeError(f"serve did not answer /ping:\n{log.read_text()}")


def stop(served: Served) -> None:
    if served.proc.poll() is None:
        os.killpg(served.proc.pid, signal.SIGTERM)
        try:
            served.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait(10)


def _fit() -> Any:
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=COLUMNS)
    return LinearRegression().fit(X, X.a * 3 - X.b + 0.5 * X.c + 1), X


@pytest.fixture(scope="module")
def sk_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    model, X = _fit()
    folder = tmp_path_factory.mktemp("sk") / "model"
    lt.sklearn.save_model(model, folder, input_example=X.head(2))
    return model, folder


@pytest.fixture(scope="module")
def served(sk_model: tuple[Any, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serving(str(sk_model[1]), tmp_path_factory.mktemp("serve"))
    yield s
    stop(s)


def _expected(sk_model: tuple[Any, Path]) -> list[float]:
    return sk_model[0].predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist()


GOOD = {
    "dataframe_split": ({"dataframe_split": {"columns": COLUMNS, "data": ROWS}}, "application/json"),
    "dataframe_split_reordered": ({"dataframe_split": {"columns": ["c", "a", "b"],
                                                       "data": [[r[2], r[0], r[1]] for r in ROWS]}},
                                  "application/json"),
    "dataframe_records": ({"dataframe_records": [dict(zip(COLUMNS, r)) for r in ROWS]},
                          "application/json"),
    "instances_rows": ({"instances": ROWS}, "application/json"),
    "instances_records": ({"instances": [dict(zip(COLUMNS, r)) for r in ROWS]}, "application/json"),
    "inputs_columns": ({"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}},
                       "application/json"),
    "inputs_with_params": ({"inputs": ROWS, "params": {}}, "application/json; charset=utf-8"),
    "csv": ("a,b,c\n" + "\n".join(",".join(str(v) for v in r) for r in ROWS) + "\n", "text/csv"),
    "csv_ints": ("a,b,c\n1,2,3\n", "text/csv"),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_each_input_format_predicts(served: Served, sk_model: tuple[Any, Path], case: str) -> None:
    body, ctype = GOOD[case]
    reply = served.post(body, ctype)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    expected = [sk_model[0].predict(pd.DataFrame([[1, 2, 3]], columns=COLUMNS))[0]] \
        if case == "csv_ints" else _expected(sk_model)
    np.testing.assert_allclose(reply.json()["predictions"], expected, rtol=1e-12)


def test_serving_example_file_is_a_valid_request(served: Served, sk_model: tuple[Any, Path]) -> None:
    body = (sk_model[1] / "serving_input_example.json").read_text()
    reply = served.post(body)
    assert reply.status_code == 200 and len(reply.json()["predictions"]) == 2


BAD = {
    "malformed_json": ('{"dataframe_split": ', "application/json", "malformed JSON"),
    "json_list": ("[1, 2, 3]", "application/json", "JSON object"),
    "unknown_key": ({"data": ROWS}, "application/json", "unknown input key 'data'"),
    "two_formats": ({"inputs": ROWS, "instances": ROWS}, "application/json", "got 2"),
    "no_format": ({"params": {}}, "application/json", "got 0"),
    "missing_column": ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}},
                       "application/json", "missing input columns ['c']"),
    "wrong_width": ({"instances": [[1.0, 2.0]]}, "application/json", "expected 3 columns"),
    "ragged_rows": ({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2, 3], [1]]}},
                    "application/json", "row 1 has 1 values, expected 3"),
    "text_in_number_column": ({"dataframe_records": [{"a": "x", "b": 1, "c": 2}]},
                              "application/json", "column 'a' must hold numbers"),
    "split_not_object": ({"dataframe_split": [[1, 2, 3]]}, "application/json", "dataframe_split must be"),
    "records_not_list": ({"dataframe_records": {"a": 1}}, "application/json", "list of objects"),
    "inputs_scalar": ({"inputs": 3}, "application/json", "must be a list"),
    "params_not_object": ({"inputs": ROWS, "params": [1]}, "application/json", "params must be"),
    "text_plain": ("a,b,c\n1,2,3\n", "text/plain", "unsupported content type 'text/plain'"),
    "form_post": ("a=1&b=2", "application/x-www-form-urlencoded", "unsupported content type"),
    "empty_csv": ("", "text/csv", "CSV body is empty"),
    "csv_header_only": ("a,b,c\n", "text/csv", "no data rows"),
    "csv_missing_column": ("a,b\n1,2\n", "text/csv", "missing input columns ['c']"),
    "not_utf8_json": (b"\xff\xfe{", "application/json", "malformed JSON"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_payloads_get_400_json(served: Served, case: str) -> None:
    body, ctype, needle = BAD[case]
    reply = served.post(body, ctype)
    assert reply.status_code == 400, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    err = reply.json()
    assert err["error_code"] == "BAD_REQUEST"
    assert needle in err["message"], err["message"]
    # The server is still fine afterwards.
    assert served.post(GOOD["dataframe_split"][0]).status_code == 200


def test_health_ping_version_and_unknown_routes(served: Served) -> None:
    for path in ("/ping", "/health"):
        assert requests.get(served.url + path, timeout=10).status_code == 200
    version = requests.get(served.url + "/version", timeout=10)
    assert (version.status_code, version.text) == (200, lt.__version__)
    missing = requests.get(served.url + "/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    wrong_method = requests.get(served.url + "/invocations", timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["error_code"] == "BAD_REQUEST"


class Doubler(lt.pyfunc.PythonModel):
    """A tensor model: ``(n, 2)`` float32 in, row sums times two out."""

    def predict(self, context: Any, model_input: Any, params: dict | None = None) -> Any:
        scale = (params or {}).get("scale", 2.0)
        return np.asarray(model_input).sum(axis=1) * scale


@pytest.fixture
def registry_server(sqlite_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    monkeypatch.delenv("LABTRACK_TRACKING_URI", raising=False)
    monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", sqlite_server.token or "")
    lt.set_tracking_uri(sqlite_server.url)
    fluent._state.experiment_id = None
    yield sqlite_server
    while lt.active_run():
        lt.end_run()
    lt.set_tracking_uri(None)  # type: ignore[arg-type]


def test_serve_a_registered_tensor_model(registry_server: ServerProcess, tmp_path: Path) -> None:
    """``-m models:/<name>@<alias>`` downloads from the server; a tensor signature checks shapes."""
    import cloudpickle

    X = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    # The serving process cannot import this test module: the class travels by value, as a
    # class defined in a notebook does.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with lt.start_run():
            lt.pyfunc.log_model("model", python_model=Doubler(), input_example=X,
                                registered_model_name="doubler")
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    lt.Client(registry_server.url).set_registered_model_alias("doubler", "live", 1)
    env = dict(os.environ, LABTRACK_TRACKING_URI=registry_server.url,
               LABTRACK_TRACKING_TOKEN=registry_server.token or "")
    served = start_serving("models:/doubler@live", tmp_path, env)
    try:
        ok = served.post({"inputs": X.tolist()})
        assert ok.status_code == 200 and ok.json() == {"predictions": [6.0, 14.0]}
        with_params = served.post({"instances": X.tolist(), "params": {"scale": 1.0}})
        assert with_params.json() == {"predictions": [3.0, 7.0]}
        csv = served.post("x,y\n1,2\n", "text/csv")
        assert csv.json() == {"predictions": [6.0]}
        for body, needle in [({"inputs": [[1.0, 2.0, 3.0]]}, "shape (-1, 2)"),
                             ({"inputs": [1.0, 2.0]}, "shape (-1, 2)"),
                             ({"inputs": [["a", "b"]]}, "must hold numbers"),
                             ({"inputs": {"x": [1.0]}}, "one unnamed tensor")]:
            bad = served.post(body)
            assert bad.status_code == 400 and needle in bad.json()["message"], bad.text
    finally:
        stop(served)


def test_serve_refuses_a_missing_model(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "labtrack", "models", "serve", "-m",
                          str(tmp_path / "nothing"), "-p", str(free_port())],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no model folder" in out.stderr and "Traceback" not in out.stderr


def test_generated_docker_context_serves_the_model(sk_model: tuple[Any, Path], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    out = subprocess.run([sys.executable, "-m", "labtrack", "models", "generate-dockerfile",
                          "-m", str(sk_model[1]), "-d", str(ctx)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    dockerfile = (ctx / "Dockerfile").read_text()
    assert dockerfile.startswith("# Generated by labtrack")
    assert "FROM python:3." in dockerfile and 'ENTRYPOINT ["sh", ' in dockerfile
    reqs = (ctx / "requirements.txt").read_text().split()
    assert any(r.startswith("scikit-learn==") for r in reqs)
    assert any(r.startswith("tornado==") for r in reqs)
    assert not any(r.startswith("labtrack") for r in reqs)  # labtrack is copied in: lib/
    assert (ctx / "model" / "MLmodel").is_file() and (ctx / "lib" / "labtrack" / "cli.py").is_file()
    assert not (ctx / "lib" / "labtrack" / "static").exists()
    # The entrypoint serves the model from the context's own labtrack copy.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    served = start_serving("", tmp_path, env, cmd=["sh", str(ctx / "entrypoint.sh")])
    try:
        reply = served.post(GOOD["dataframe_split"][0])
        assert reply.status_code == 200
        np.testing.assert_allclose(reply.json()["predictions"], _expected(sk_model), rtol=1e-12)
    finally:
        stop(served)
    again = subprocess.run([sys.executable, "-m", "labtrack", "models", "generate-dockerfile",
                            "-m", str(sk_model[1]), "-d", str(ctx)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr

"""bench/replay.py, the instant server behind bench_server's "ceiling" column.

The ceiling is only honest if the replay answers exactly what labtrack
answered, does no work while replaying, and leaves the server holding every
write (later phases read them).  A real ``labtrack server`` is its upstream.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.servers import ServerProcess, free_port, start_server

REPLAY = Path(__file__).resolve().parents[2] / "bench" / "replay.py"


@pytest.fixture()
def pair(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    upstream = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPLAY), "--port", str(port), "--upstream", upstream.url])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/health", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield upstream, url
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.stop()


def test_replay_answers_from_the_recording_and_sends_writes_on_afterwards(
        pair: tuple[ServerProcess, str]) -> None:
    upstream, url = pair
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {upstream.token}"
    api = url + "/api/2.0/mlflow/"
    exp = s.post(api + "experiments/create", json={"name": "replayed"}).json()["experiment_id"]
    run = s.post(api + "runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    point = {"run_id": run, "key": "m", "value": 0.5, "timestamp": 1, "step": 0}
    assert s.post(api + "runs/log-metric", json=point).json() == {}
    search = {"experiment_ids": [exp], "filter": "metrics.m < 1"}
    recorded = s.post(api + "runs/search", json=search)
    assert [r["info"]["run_id"] for r in recorded.json()["runs"]] == [run]

    assert s.post(url + "/__replay__/on").status_code == 200
    for step in (1, 2, 3):
        r = s.post(api + "runs/log-metric", json={**point, "step": step, "value": float(step)})
        assert r.status_code == 200 and r.json() == {}
    # The same search gets the same bytes; the upstream has not seen the new points yet.
    assert s.post(api + "runs/search", json=search).content == recorded.content
    history = upstream.api("GET", "metrics/get-history", {"run_id": run, "metric_key": "m"}).json()
    assert [m["step"] for m in history["metrics"]] == [0]
    # A request never recorded is refused, in MLflow's error shape, not forwarded.
    missing = s.get(api + "runs/get", params={"run_id": run})
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    assert s.post(url + "/__replay__/off").status_code == 200
    history = upstream.api("GET", "metrics/get-history", {"run_id": run, "metric_key": "m"}).json()
    assert [(m["step"], m["value"]) for m in history["metrics"]] == [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0)]
    # Forwarding again: a new search sees the points the replay held back.
    fresh = s.post(api + "runs/search", json={**search, "filter": "metrics.m > 2"}).json()
    assert [r["info"]["run_id"] for r in fresh["runs"]] == [run]

"""Real servers for the training tests: one ``labtrack server`` and one ``mlflow server``.

A differential autolog test trains the same tiny model twice, each time in a
fresh Python process (the two autologs patch the same library methods, so
they must never share one): once with ``lt.<lib>.autolog()`` logging to
labtrack, once with ``mlflow.<lib>.autolog()`` logging to MLflow.  Both runs
are then read back with the mlflow client and compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import CLIENT_ENV, TrackingServer, start_labtrack, start_mlflow, stop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    server = start_labtrack(tmp_path_factory.mktemp("lt-training"))
    yield server
    stop(server.proc)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    server = start_mlflow(tmp_path_factory.mktemp("mlflow-training"))
    yield server
    stop(server.proc)


def child_env(server: TrackingServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]),
               MLFLOW_TRACKING_URI=server.uri, LABTRACK_TRACKING_URI=server.uri,
               MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    if server.token:
        env["LABTRACK_TRACKING_TOKEN"] = server.token
        env["MLFLOW_TRACKING_TOKEN"] = server.token
    return env


def train(server: TrackingServer, client: str, body: str, workdir: Path, timeout: float = 600) -> str:
    """Run ``body`` (training code) after ``<client>.<...>.autolog()`` set-up lines that the body
    contains itself, in a fresh process logging to ``server``; return the run id it printed."""
    experiment = f"{client}-{uuid.uuid4().hex[:8]}"
    head = ("import labtrack as lt\nlt.set_experiment(%r)\n" % experiment if client == "lt"
            else "import mlflow\nmlflow.set_experiment(%r)\n" % experiment)
    tail = ("\nlt.flush()\nprint('RUN_ID=' + lt.last_active_run().info.run_id)\n" if client == "lt"
            else "\nprint('RUN_ID=' + mlflow.last_active_run().info.run_id)\n")
    script = workdir / f"train_{client}_{uuid.uuid4().hex[:6]}.py"
    script.write_text(head + textwrap.dedent(body) + tail)
    done = subprocess.run([sys.executable, str(script)], env=child_env(server), cwd=workdir,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    ids = [line[7:] for line in done.stdout.splitlines() if line.startswith("RUN_ID=")]
    assert ids, done.stdout[-2000:] + done.stderr[-3000:]
    return ids[-1]


def recorded(server: TrackingServer, run_id: str) -> dict[str, Any]:
    """What a run recorded, as the mlflow client reads it: keys, step counts, model flavors."""
    from mlflow import MlflowClient

    if server.token:  # the mlflow client sends it as a bearer token
        os.environ["MLFLOW_TRACKING_TOKEN"] = server.token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    client = MlflowClient(server.uri)
    run = client.get_run(run_id)
    # Distinct (step, value) points: a store keeps two identical points logged in different
    # milliseconds (transformers logs the last epoch twice, with the last loss and the summary),
    # so a raw count depends on the clock on either server.
    steps = {key: len({(m.step, m.value) for m in client.get_metric_history(run_id, key)})
             for key in run.data.metrics}
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    flavors = {}
    for model in models:
        flavors[model.name] = sorted(_flavors(server, model.model_id))
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    return {"params": sorted(run.data.params), "metrics": sorted(run.data.metrics), "steps": steps,
            "flavors": flavors, "tags": run.data.tags, "children": len(children),
            "child_params": sorted(children[0].data.params) if children else [],
            "child_metrics": sorted(children[0].data.metrics) if children else [],
            "inputs": [d.dataset.name for d in (run.inputs.dataset_inputs if run.inputs else [])]}


def _flavors(server: TrackingServer, model_id: str) -> list[str]:
    import mlflow.models

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.uri)
    try:
        return list(mlflow.models.get_model_info(f"models:/{model_id}").flavors)
    finally:
        mlflow.set_tracking_uri(previous)


def json_dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)

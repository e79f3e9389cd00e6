"""A deliberate duplicate create_experiment is refused as MLflow refuses it (issue #22, point 3).

labtrack answers a *racing* create of an existing name with its id
(store/experiment_race.py); a create made after the first one returned, by a
caller whose lookup did not miss, must still get RESOURCE_ALREADY_EXISTS with
the same status and error code as from a real ``mlflow server``.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from .conftest import TrackingServer


def _call(server: TrackingServer, method: str, path: str, body: dict) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
    url = f"{server.uri}/api/2.0/mlflow/{path}"
    if method == "GET":
        return requests.get(url, params=body, headers=headers, timeout=60)
    return requests.post(url, json=body, headers=headers, timeout=60)


def _refused_as_mlflow_does(r: requests.Response, name: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert body["message"].startswith(f"Experiment(name={name}) already exists.")


def test_second_create_after_the_first_returned_is_refused(tracking_server: TrackingServer) -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"
    first = _call(tracking_server, "POST", "experiments/create", {"name": name})
    assert first.status_code == 200 and first.json()["experiment_id"]
    _refused_as_mlflow_does(_call(tracking_server, "POST", "experiments/create", {"name": name}), name)


def test_lookup_create_then_a_deliberate_create_is_refused(tracking_server: TrackingServer) -> None:
    """The mlflow client's set_experiment sequence (miss, create), then a deliberate duplicate."""
    name = f"dup-{uuid.uuid4().hex[:8]}"
    miss = _call(tracking_server, "GET", "experiments/get-by-name", {"experiment_name": name})
    assert miss.status_code == 404 and miss.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert _call(tracking_server, "POST", "experiments/create", {"name": name}).status_code == 200
    _refused_as_mlflow_does(_call(tracking_server, "POST", "experiments/create", {"name": name}), name)


def test_mlflow_client_create_experiment_twice_raises(tracking_server: TrackingServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tracking_server.token or "")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = MlflowClient(tracking_server.uri)
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert client.get_experiment_by_name(name) is None
    client.create_experiment(name)
    with pytest.raises(MlflowException) as e:
        client.create_experiment(name)
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_a_racing_create_with_other_tags_is_refused(tracking_server: TrackingServer) -> None:
    """Only the same request is excused: a racing create that asks for other tags is refused."""
    name = f"dup-{uuid.uuid4().hex[:8]}"
    for _ in range(2):  # two callers both miss
        assert _call(tracking_server, "GET", "experiments/get-by-name",
                     {"experiment_name": name}).status_code == 404
    assert _call(tracking_server, "POST", "experiments/create", {"name": name}).status_code == 200
    other = _call(tracking_server, "POST", "experiments/create",
                  {"name": name, "tags": [{"key": "owner", "value": "bo"}]})
    _refused_as_mlflow_does(other, name)


def test_a_racing_create_gets_the_id_on_labtrack_only(tracking_server: TrackingServer) -> None:
    """Two callers miss, both create: labtrack answers the second with the id; MLflow refuses it
    (which is why the mlflow client's set_experiment files that task's run under Default)."""
    name = f"race-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        assert _call(tracking_server, "GET", "experiments/get-by-name",
                     {"experiment_name": name}).status_code == 404
    first = _call(tracking_server, "POST", "experiments/create", {"name": name})
    second = _call(tracking_server, "POST", "experiments/create", {"name": name})
    if tracking_server.kind == "mlflow":
        _refused_as_mlflow_does(second, name)
    else:
        assert second.status_code == 200 and second.json() == first.json()
    # Both misses are spent: a third create is deliberate on both servers.
    _refused_as_mlflow_does(_call(tracking_server, "POST", "experiments/create", {"name": name}), name)

"""Saved views over HTTP (``/api/2.0/labtrack/views/...``) on a real server, SQLite and PostgreSQL.

Create, get, list, update (rename, new state), delete; each bad input gets
MLflow's error JSON and a 4xx and leaves the views as they were; on a team
server (basic-auth) a view follows its experiment's permission.
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

from labtrack.limits import LIMITS
from tests.api.conftest import mlflow_error
from tests.servers import ServerProcess, start_server

V = "/api/2.0/labtrack/views/"
STATE = {"query": "filter=params.lr+%3D+%270.1%27&sort=metrics.loss%3Aasc&group=params.opt"
                  "&cols=%5B%22attr.name%22%2C%22metrics.loss%22%5D",
         "panels": [{"title": "Loss by optimizer", "metrics": ["loss", "val_loss"], "x": "step",
                     "smoothing": 0.5, "log": False, "group": "params.opt"}]}


def _experiment(server: ServerProcess) -> str:
    reply = server.api("POST", "experiments/create", {"name": f"views-{uuid.uuid4().hex[:8]}"})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["experiment_id"])


def test_create_get_list_update_delete(module_server: ServerProcess) -> None:
    srv = module_server
    exp = _experiment(srv)
    made = srv.api("POST", V + "create", {"experiment_id": exp, "name": "best runs", "state": STATE})
    assert made.status_code == 200, made.text
    view = made.json()["view"]
    assert view["experiment_id"] == exp and view["name"] == "best runs"
    assert view["state"] == STATE  # the panel's defaults are all given here, so it comes back as sent
    assert len(view["view_id"]) == 32 and view["creation_time"] == view["last_update_time"] > 0

    got = srv.api("GET", V + "get", {"view_id": view["view_id"]}).json()["view"]
    assert got == view
    # the ajax prefix the web UI uses answers the same
    assert requests.get(srv.url + "/ajax-api/2.0/labtrack/views/get", params={"view_id": view["view_id"]},
                        headers=srv.session.headers, timeout=30).json()["view"] == view

    # a bare panel gets its defaults; a number experiment id is taken as mlflow's string
    second = srv.api("POST", V + "create", {"experiment_id": int(exp), "name": "a loss chart",
                                            "state": {"panels": [{"metrics": ["loss"]}]}}).json()["view"]
    assert second["state"] == {"query": "", "panels": [{"title": "", "metrics": ["loss"], "x": "step",
                                                         "smoothing": 0.0, "log": False, "group": ""}]}
    listed = srv.api("GET", V + "list", {"experiment_id": exp}).json()["views"]
    assert [v["name"] for v in listed] == ["a loss chart", "best runs"]  # by name
    other = _experiment(srv)
    assert srv.api("GET", V + "list", {"experiment_id": other}).json() == {"views": []}
    # the same name in another experiment is another view
    assert srv.api("POST", V + "create", {"experiment_id": other, "name": "best runs"}).status_code == 200

    renamed = srv.api("POST", V + "update", {"view_id": view["view_id"], "name": "top runs"}).json()["view"]
    assert renamed["name"] == "top runs" and renamed["state"] == STATE
    assert renamed["last_update_time"] >= view["last_update_time"]
    new_state = {"query": "group=params.lr", "panels": []}
    changed = srv.api("PATCH", V + "update", {"view_id": view["view_id"], "state": new_state}).json()["view"]
    assert changed["name"] == "top runs" and changed["state"] == new_state

    assert srv.api("POST", V + "delete", {"view_id": view["view_id"]}).json() == {}
    mlflow_error(srv.api("GET", V + "get", {"view_id": view["view_id"]}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert srv.api("DELETE", V + "delete", {"view_id": second["view_id"]}).json() == {}
    assert srv.api("GET", V + "list", {"experiment_id": exp}).json() == {"views": []}


def _bad_cases(exp: str, taken: str, view_id: str) -> list[tuple[str, str, str, Any, int, str, str]]:
    """(id, method, endpoint, body, status, error code, a word the message holds)."""
    big = LIMITS["view_query"] + 1
    panel = {"metrics": ["loss"]}
    return [
        ("no-experiment", "POST", "create", {"name": "x"}, 400, "INVALID_PARAMETER_VALUE", "experiment_id"),
        ("bad-experiment", "POST", "create", {"experiment_id": "abc", "name": "x"}, 400,
         "INVALID_PARAMETER_VALUE", "experiment"),
        ("unknown-experiment", "POST", "create", {"experiment_id": "987654", "name": "x"}, 404,
         "RESOURCE_DOES_NOT_EXIST", "987654"),
        ("no-name", "POST", "create", {"experiment_id": exp}, 400, "INVALID_PARAMETER_VALUE", "name"),
        ("blank-name", "POST", "create", {"experiment_id": exp, "name": "   "}, 400, "INVALID_PARAMETER_VALUE", "name"),
        ("name-not-string", "POST", "create", {"experiment_id": exp, "name": 5}, 400, "INVALID_PARAMETER_VALUE", "name"),
        ("name-too-long", "POST", "create", {"experiment_id": exp, "name": "n" * (LIMITS["view_name"] + 1)}, 400,
         "INVALID_PARAMETER_VALUE", "limit"),
        ("name-taken", "POST", "create", {"experiment_id": exp, "name": taken}, 400, "RESOURCE_ALREADY_EXISTS", taken),
        ("state-not-object", "POST", "create", {"experiment_id": exp, "name": "x", "state": [1]}, 400,
         "INVALID_PARAMETER_VALUE", "state"),
        ("state-unknown-field", "POST", "create", {"experiment_id": exp, "name": "x", "state": {"sql": "drop"}}, 400,
         "INVALID_PARAMETER_VALUE", "sql"),
        ("query-too-long", "POST", "create", {"experiment_id": exp, "name": "x", "state": {"query": "q" * big}}, 400,
         "INVALID_PARAMETER_VALUE", "limit"),
        ("too-many-panels", "POST", "create",
         {"experiment_id": exp, "name": "x", "state": {"panels": [panel] * (LIMITS["view_panels"] + 1)}}, 400,
         "INVALID_PARAMETER_VALUE", "limit"),
        ("panel-no-metrics", "POST", "create", {"experiment_id": exp, "name": "x", "state": {"panels": [{}]}}, 400,
         "INVALID_PARAMETER_VALUE", "metrics"),
        ("panel-bad-x", "POST", "create",
         {"experiment_id": exp, "name": "x", "state": {"panels": [{"metrics": ["a"], "x": "epoch"}]}}, 400,
         "INVALID_PARAMETER_VALUE", "x"),
        ("panel-bad-smoothing", "POST", "create",
         {"experiment_id": exp, "name": "x", "state": {"panels": [{"metrics": ["a"], "smoothing": 1.5}]}}, 400,
         "INVALID_PARAMETER_VALUE", "smoothing"),
        ("panel-bad-group", "POST", "create",
         {"experiment_id": exp, "name": "x", "state": {"panels": [{"metrics": ["a"], "group": "lr"}]}}, 400,
         "INVALID_PARAMETER_VALUE", "group"),
        ("panel-metric-not-string", "POST", "create",
         {"experiment_id": exp, "name": "x", "state": {"panels": [{"metrics": [3]}]}}, 400,
         "INVALID_PARAMETER_VALUE", "metrics"),
        ("get-no-id", "GET", "get", {}, 400, "INVALID_PARAMETER_VALUE", "view_id"),
        ("get-bad-id", "GET", "get", {"view_id": "../../etc"}, 400, "INVALID_PARAMETER_VALUE", "view"),
        ("get-unknown", "GET", "get", {"view_id": "0" * 32}, 404, "RESOURCE_DOES_NOT_EXIST", "view"),
        ("list-no-experiment", "GET", "list", {}, 400, "INVALID_PARAMETER_VALUE", "experiment_id"),
        ("update-unknown", "POST", "update", {"view_id": "0" * 32, "name": "y"}, 404, "RESOURCE_DOES_NOT_EXIST", "view"),
        ("update-to-taken", "POST", "update", {"view_id": view_id, "name": taken}, 400, "RESOURCE_ALREADY_EXISTS", taken),
        ("update-bad-state", "POST", "update", {"view_id": view_id, "state": "not json"}, 400,
         "INVALID_PARAMETER_VALUE", "state"),
        ("delete-unknown", "POST", "delete", {"view_id": "0" * 32}, 404, "RESOURCE_DOES_NOT_EXIST", "view"),
    ]


def test_bad_input_gets_mlflow_errors_and_changes_nothing(module_server: ServerProcess) -> None:
    srv = module_server
    exp = _experiment(srv)
    taken = srv.api("POST", V + "create", {"experiment_id": exp, "name": "taken", "state": STATE}).json()["view"]
    mine = srv.api("POST", V + "create", {"experiment_id": exp, "name": "mine"}).json()["view"]
    before = srv.api("GET", V + "list", {"experiment_id": exp}).json()
    failures = []
    for case_id, method, endpoint, body, status, code, word in _bad_cases(exp, taken["name"], mine["view_id"]):
        reply = srv.api(method, V + endpoint, body)
        try:
            message = mlflow_error(reply, status, code)
            assert word.lower() in message.lower(), message
        except AssertionError as e:
            failures.append(f"{case_id}: {e}")
    assert not failures, "\n".join(failures)
    assert srv.api("GET", V + "list", {"experiment_id": exp}).json() == before
    # a form post (not JSON) is refused like every other write
    form = srv.session.post(srv.url + V + "create", data={"experiment_id": exp, "name": "form"}, timeout=30)
    mlflow_error(form, 400, "BAD_REQUEST")


def test_views_go_with_their_experiment(module_server: ServerProcess) -> None:
    """``labtrack gc`` removing a deleted experiment removes its views (no dangling rows, no FK error)."""
    srv = module_server
    exp = _experiment(srv)
    srv.api("POST", V + "create", {"experiment_id": exp, "name": "doomed", "state": STATE}).raise_for_status()
    assert srv.api("POST", "experiments/delete", {"experiment_id": exp}).status_code == 200
    gc = srv.api("POST", "/api/2.0/labtrack/gc", {"experiment_ids": [exp]})
    assert gc.status_code == 200, gc.text
    assert gc.json()["experiments"] == 1
    assert srv.api("GET", V + "list", {"experiment_id": exp}).json() == {"views": []}


# -- a team server: a view follows its experiment's permission ------------------------------------

ADMIN = ("admin", "admin-Secret-4821")
ALICE = ("alice", "alice-Secret-7302")
BOB = ("bob", "bob-Secret-5519")


@pytest.fixture(scope="module")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("views-auth")
    db = f"sqlite:///{workdir / 'mlruns.db'}"
    made = subprocess.run([sys.executable, "-m", "labtrack", "users", "create", ADMIN[0], "--admin",
                           "--password-stdin", "--backend-store-uri", db],
                          input=ADMIN[1] + "\n", capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    srv = start_server(db, workdir, token=None, extra=["--app-name", "basic-auth"], timeout=120)
    try:
        for who in (ALICE, BOB):
            reply = requests.post(srv.url + "/api/2.0/mlflow/users/create", auth=ADMIN, timeout=30,
                                  json={"username": who[0], "password": who[1]})
            assert reply.status_code == 200, reply.text
        yield srv
    finally:
        srv.stop()


def test_team_server_views_follow_experiment_permissions(team_server: ServerProcess) -> None:
    srv = team_server

    def call(who: tuple[str, str], method: str, path: str, body: Any = None) -> requests.Response:
        url = srv.url + (path if path.startswith("/") else V + path)
        if method == "GET":
            return requests.get(url, params=body, auth=who, timeout=30)
        return requests.request(method, url, json=body, auth=who, timeout=30)

    exp = call(ALICE, "POST", "/api/2.0/mlflow/experiments/create", {"name": f"alice-{uuid.uuid4().hex[:6]}"})
    exp_id = exp.json()["experiment_id"]
    view = call(ALICE, "POST", "create", {"experiment_id": exp_id, "name": "alice's", "state": STATE})
    assert view.status_code == 200, view.text
    view_id = view.json()["view"]["view_id"]
    assert view.json()["view"]["created_by"] == "alice"

    # bob has the server's default (READ): he opens and lists alice's views, and changes none
    assert call(BOB, "GET", "get", {"view_id": view_id}).json()["view"]["name"] == "alice's"
    assert [v["name"] for v in call(BOB, "GET", "list", {"experiment_id": exp_id}).json()["views"]] == ["alice's"]
    mlflow_error(call(BOB, "POST", "create", {"experiment_id": exp_id, "name": "bob's"}), 403, "PERMISSION_DENIED")
    mlflow_error(call(BOB, "POST", "update", {"view_id": view_id, "name": "mine now"}), 403, "PERMISSION_DENIED")
    mlflow_error(call(BOB, "POST", "delete", {"view_id": view_id}), 403, "PERMISSION_DENIED")
    mlflow_error(call(("bob", "wrong-password-1"), "GET", "get", {"view_id": view_id}), 401, "UNAUTHENTICATED")

    # once alice's experiment is closed to bob, so are its views
    def grant(permission: str) -> None:
        path = "/api/2.0/mlflow/users/permissions/"
        call(ALICE, "POST", path + "revoke", {"username": "bob", "resource_type": "experiment", "resource_id": exp_id})
        reply = call(ALICE, "POST", path + "grant", {"username": "bob", "resource_type": "experiment",
                                                     "resource_id": exp_id, "permission": permission})
        assert reply.status_code == 200, reply.text

    grant("DENY")
    mlflow_error(call(BOB, "GET", "get", {"view_id": view_id}), 403, "PERMISSION_DENIED")
    mlflow_error(call(BOB, "GET", "list", {"experiment_id": exp_id}), 403, "PERMISSION_DENIED")
    # with EDIT he may save and rename
    grant("EDIT")
    assert call(BOB, "POST", "create", {"experiment_id": exp_id, "name": "bob's"}).status_code == 200
    assert call(BOB, "POST", "update", {"view_id": view_id, "name": "shared"}).json()["view"]["name"] == "shared"
    assert "Secret" not in srv.log()


def test_store_raises_typed_errors(tmp_path: Path) -> None:
    """In Python the same refusals are labtrack's typed exceptions."""
    from labtrack.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
    from labtrack.store.tracking import TrackingStore
    from labtrack.store.views import ViewStore

    tracking = TrackingStore(f"sqlite:///{tmp_path / 'mlruns.db'}")
    try:
        views = ViewStore(tracking)
        exp = tracking.create_experiment("typed")
        made = views.create(exp, "v", STATE)
        with pytest.raises(ResourceAlreadyExists):
            views.create(exp, "v", None)
        with pytest.raises(InvalidParameterValue):
            views.create(exp, "w", {"panels": [{"metrics": []}]})
        with pytest.raises(ResourceDoesNotExist):
            views.get("f" * 32)
        assert views.list(exp) == [made]
    finally:
        tracking.close()

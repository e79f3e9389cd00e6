"""Users and permissions: the mlflow client's basic-auth workload against ``mlflow server --app-name basic-auth``.

MLflow's auth app creates ``admin`` with the password of its config file; on
labtrack the same first admin is made on the command line
(``labtrack users create --admin``), since labtrack has no default password.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client.conftest import stop, wait_healthy
from tests.servers import free_port
from tests.team.conftest import labtrack_cmd, launch, mlflow_cmd

ADMIN = ("admin", "admin-Secret-4821")
ALICE = ("alice", "alice-Secret-7302")
BOB = ("bob", "bob-Secret-5519")
PASSWORDS = (ADMIN[1], ALICE[1], BOB[1], "bob-Changed-9911")


class Server:
    def __init__(self, kind: str, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.kind, self.url, self.proc, self.log = kind, url, proc, log


def _labtrack_admin(workdir: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "labtrack", "users", "create", ADMIN[0], "--admin",
                          "--password-stdin", "--backend-store-uri", f"sqlite:///{workdir}/l.db"],
                         input=ADMIN[1] + "\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert ADMIN[1] not in out.stdout + out.stderr


@pytest.fixture(scope="module")
def auth_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    mdir = tmp_path_factory.mktemp("mlflow-auth")
    ini = mdir / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{mdir}/auth.db\n"
                   f"admin_username = {ADMIN[0]}\nadmin_password = {ADMIN[1]}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    proc, log = launch(mlflow_cmd(mdir, port, "--app-name", "basic-auth", "--artifacts-destination",
                                  str(mdir / "art")), mdir,
                       {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret"},
                       "mlflow")
    started["mlflow"] = Server("mlflow", f"http://127.0.0.1:{port}", proc, log)
    ldir = tmp_path_factory.mktemp("labtrack-auth")
    _labtrack_admin(ldir)
    port = free_port()
    proc, log = launch(labtrack_cmd(ldir, port, "--app-name", "basic-auth", "--access-log",
                                    "--artifacts-destination", str(ldir / "art")), ldir, {}, "labtrack")
    started["labtrack"] = Server("labtrack", f"http://127.0.0.1:{port}", proc, log)
    try:
        for server in started.values():
            wait_healthy(server.url, server.proc, server.log, 300)
        yield started
    finally:
        for server in started.values():
            stop(server.proc)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """What the caller sees: the value, or the HTTP status of the refusal."""
    from mlflow.exceptions import MlflowException

    try:
        return ("ok", fn(*args, **kwargs))
    except MlflowException as e:
        return ("refused", e.get_http_status_code())


def workload(server: Server, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import time

    import mlflow
    from mlflow.server import get_app_client

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def as_user(who: tuple[str, str]) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", who[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", who[1])

    auth = get_app_client("basic-auth", tracking_uri=server.url)
    client = mlflow.MlflowClient(server.url)
    seen: list[Any] = []

    t0 = time.monotonic()

    def note(label: str, outcome: Any) -> Any:
        print(f"{server.kind} {time.monotonic() - t0:.1f}s {label}: {outcome}")
        seen.append((label, outcome))
        return outcome

    as_user(ADMIN)
    for who in (ALICE, BOB):
        user = auth.create_user(*who)
        note(f"create {who[0]}", (user.username, user.is_admin))
    note("create alice again", _outcome(auth.create_user, *ALICE))

    as_user(ALICE)
    exp = client.create_experiment(f"alice-{uuid.uuid4().hex[:6]}")
    run = client.create_run(exp)
    rid = run.info.run_id
    note("alice logs", _outcome(client.log_param, rid, "lr", "0.1"))
    note("alice reads own grant", _outcome(lambda: auth.get_user_permission("alice", "experiment", exp).permission))

    as_user(BOB)
    note("bob reads exp (default READ)", _outcome(lambda: client.get_experiment(exp).name.startswith("alice-")))
    note("bob reads run", _outcome(lambda: client.get_run(rid).data.params))
    note("bob cannot write with READ", _outcome(client.log_metric, rid, "m", 1.0))
    note("bob cannot make a logged model with READ",
         _outcome(lambda: client.create_logged_model(experiment_id=exp, name="m").name))
    note("bob cannot grant himself", _outcome(auth.grant_user_permission, "bob", "experiment", exp, "EDIT"))
    note("bob cannot read alice", _outcome(auth.get_user, "alice"))
    note("bob reads himself", _outcome(lambda: auth.get_user("bob").username))

    as_user(ALICE)
    note("alice grants EDIT", _outcome(auth.grant_user_permission, "bob", "experiment", exp, "EDIT"))
    note("grant twice", _outcome(auth.grant_user_permission, "bob", "experiment", exp, "EDIT"))
    as_user(BOB)
    note("bob writes with EDIT", _outcome(client.log_metric, rid, "m", 2.0))
    note("bob makes a logged model with EDIT",
         _outcome(lambda: client.create_logged_model(experiment_id=exp, name="m").name))
    note("bob cannot delete with EDIT", _outcome(client.delete_run, rid))
    as_user(ALICE)
    note("alice revokes", _outcome(auth.revoke_user_permission, "bob", "experiment", exp))
    note("revoke twice", _outcome(auth.revoke_user_permission, "bob", "experiment", exp))
    as_user(BOB)
    note("bob cannot write after revoke", _outcome(client.log_metric, rid, "m", 3.0))
    as_user(ALICE)
    # MLflow 3.17 grants no NO_PERMISSIONS on one resource (it is a default): DENY hides it.
    note("alice grants NO_PERMISSIONS", _outcome(auth.grant_user_permission, "bob", "experiment", exp,
                                                  "NO_PERMISSIONS"))
    note("alice grants DENY", _outcome(auth.grant_user_permission, "bob", "experiment", exp, "DENY"))
    note("alice cannot read bob's permission",
         _outcome(lambda: auth.get_user_permission("bob", "experiment", exp).to_json()))
    as_user(ADMIN)
    note("bob's permission", _outcome(lambda: auth.get_user_permission("bob", "experiment", exp).to_json()))
    as_user(BOB)
    note("bob reads his permission", _outcome(lambda: auth.get_user_permission("bob", "experiment", exp).to_json()))
    note("bob cannot see exp", _outcome(client.get_experiment, exp))
    note("bob cannot see run", _outcome(client.get_run, rid))
    note("bob's search leaves it out",
         _outcome(lambda: exp in [e.experiment_id for e in client.search_experiments()]))

    as_user(ALICE)
    model = f"model-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(model)
    as_user(BOB)
    note("bob reads model", _outcome(lambda: client.get_registered_model(model).name == model))
    note("bob cannot update model", _outcome(client.update_registered_model, model, "by bob"))
    as_user(ALICE)
    note("alice grants model EDIT", _outcome(auth.grant_user_permission, "bob", "registered_model", model, "EDIT"))
    as_user(BOB)
    note("bob updates model", _outcome(lambda: client.update_registered_model(model, "by bob").description))

    as_user((BOB[0], "wrong-password"))
    note("wrong password", _outcome(client.get_experiment, "0"))
    as_user(BOB)
    note("bob changes his password without the old one",
         _outcome(auth.update_user_password, "bob", "bob-Changed-9911"))
    note("bob changes his password", _outcome(auth.update_user_password, "bob", "bob-Changed-9911",
                                              current_password=BOB[1]))
    as_user(("bob", "bob-Changed-9911"))
    note("bob signs in with the new one", _outcome(lambda: auth.get_user("bob").username))
    as_user(ADMIN)
    note("admin makes alice admin", _outcome(auth.update_user_admin, "alice", True))
    note("alice is admin", _outcome(lambda: auth.get_user("alice").is_admin))
    note("admin deletes bob", _outcome(auth.delete_user, "bob"))
    as_user(("bob", "bob-Changed-9911"))
    note("deleted bob is refused", _outcome(client.get_experiment, "0"))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    note("no credentials", _outcome(client.get_experiment, "0"))
    return seen


@pytest.mark.timeout(600)
def test_basic_auth_workload_matches_mlflow(auth_servers: dict[str, Server], monkeypatch: pytest.MonkeyPatch) -> None:
    want = workload(auth_servers["mlflow"], monkeypatch)
    got = workload(auth_servers["labtrack"], monkeypatch)
    assert got == want
    # The labtrack log holds no password, and no Authorization header in any form.
    text = auth_servers["labtrack"].log.read_text(errors="replace")
    assert "experiments/get" in text  # --access-log wrote the requests
    for who, secret in (ADMIN, ALICE, BOB, ("bob", "bob-Changed-9911"), ("bob", "wrong-password")):
        assert secret not in text
        assert base64.b64encode(f"{who}:{secret}".encode()).decode() not in text


def test_wrong_passwords_get_401_then_are_rate_limited(auth_servers: dict[str, Server]) -> None:
    url = auth_servers["labtrack"].url + "/api/2.0/mlflow/experiments/get"
    name = f"nobody-{uuid.uuid4().hex[:6]}"
    statuses = [requests.get(url, params={"experiment_id": "0"}, auth=(name, f"guess-{i}"), timeout=30).status_code
                for i in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    # The admin's own correct password still works: the limit is per name (and address).
    ok = requests.get(url, params={"experiment_id": "0"}, auth=ADMIN, timeout=30)
    assert ok.status_code == 200, ok.text
    text = auth_servers["labtrack"].log.read_text(errors="replace")
    assert "guess-" not in text


def test_no_default_admin(tmp_path: Path) -> None:
    """MLflow's admin/password1234 does not exist on a labtrack server; the log says how to make one."""
    port = free_port()
    proc, log = launch(labtrack_cmd(tmp_path, port, "--app-name", "basic-auth"), tmp_path, {}, "fresh")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log, 120)
        reply = requests.get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get",
                             params={"experiment_id": "0"}, auth=("admin", "password1234"), timeout=30)
        assert reply.status_code == 401
        assert "labtrack users create --admin" in log.read_text()
    finally:
        stop(proc)


def test_users_command_line(tmp_path: Path) -> None:
    """``labtrack users``: create, list, set-password, delete; refusals in one line, passwords never echoed."""
    db = ["--backend-store-uri", f"sqlite:///{tmp_path}/u.db"]

    def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "labtrack", "users", *args], input=stdin,
                              capture_output=True, text=True, timeout=120)

    made = users("create", "ada", "--admin", "--password-stdin", *db, stdin="ada-Secret-1815\n")
    assert made.returncode == 0 and "created admin ada" in made.stdout, made.stderr
    again = users("create", "ada", "--password-stdin", *db, stdin="other-Secret-1\n")
    assert again.returncode != 0 and len(again.stderr.strip().splitlines()) == 1 and "already exists" in again.stderr
    short = users("create", "bob", "--password-stdin", *db, stdin="short\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    assert users("create", "bob", "--password-stdin", *db, stdin="bob-Secret-2024\n").returncode == 0
    assert users("list", *db).stdout.splitlines() == ["ada\tadmin", "bob\tuser"]
    assert users("set-password", "bob", "--password-stdin", *db, stdin="bob-Secret-2025\n").returncode == 0
    assert users("delete", "bob", *db).returncode == 0
    gone = users("delete", "bob", *db)
    assert gone.returncode != 0 and "not found" in gone.stderr
    everything = "".join(p.stdout + p.stderr for p in (made, again, short, gone))
    assert "Secret" not in everything and "Traceback" not in everything

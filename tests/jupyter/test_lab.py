"""JupyterLab end to end (issue 5): a real ``jupyter lab``, a real kernel, Chromium clicking the tile.

Per base_url ("/" and JupyterHub's "/user/alice/"), one lab session walks the
user's path in order:

1. a notebook kernel in a SUBFOLDER logs a run with no tracking URI (it finds
   the database through LABTRACK_DATABASE, which labtrack's server extension
   set, and starts a background server for it, since nobody clicked yet);
2. the lab extension is installed and the proxy entry is listed;
3. a click on the launcher tile opens the UI through the proxy in a new tab,
   and it shows that run (the proxied server took the database over);
4. an artifact downloads through the proxy; the status endpoint counts runs;
5. the server listens on a unix socket in a 0700 folder and on no TCP port;
6. the kernel logs again (its client found the new server by itself);
7. Jupyter stops: no labtrack process is left, the ownership record is released.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.jupyter.lab import (
    JupyterLab,
    execute,
    labtrack_card,
    open_lab_page,
    start_kernel,
    start_lab,
)

pytestmark = pytest.mark.timeout(600)

LOG_RUN = """
import os, labtrack as lt
lt.set_experiment("jupyter-e2e")
with lt.start_run(run_name={name!r}) as run:
    lt.log_param("lr", 0.1)
    lt.log_metric("loss", 0.25)
    lt.log_text("hello from a subfolder", "notes/hello.txt")
lt.flush()
print("RUN", run.info.run_id)
print("DB", os.environ.get("LABTRACK_DATABASE"))
print("CWD", os.getcwd())
"""


def _labtrack_processes(root: Path) -> list[psutil.Process]:
    """labtrack servers serving a database under ``root`` (ours, never another test's)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "labtrack" in cmd and str(root) in cmd and "jupyter lab" not in cmd:
            found.append(p)
    return found


def _owner(db: Path) -> Any:
    from labtrack.ownership import read_owner

    return read_owner(db)


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _labextension_listed() -> str:
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                         capture_output=True, text=True, timeout=120)
    return re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)


@pytest.mark.parametrize("base_url", ["/", "/user/alice/"])
def test_tile_opens_ui_with_runs_from_a_subfolder_notebook(tmp_path: Path, browser: Any, base_url: str) -> None:
    root, home = tmp_path / "root", tmp_path / "home"
    db = root / "mlruns.db"
    lab = start_lab(root, home, base_url=base_url)
    try:
        _walk_through(lab, browser, db)
    except BaseException:
        print(lab.log()[-6000:])
        raise
    finally:
        lab.stop()
    # 7. Jupyter stopped: its labtrack server went with it, and released the database.
    _wait(lambda: not _labtrack_processes(root), 15, "labtrack processes to exit")
    assert _owner(db) is None
    # The browser and every request carried the Jupyter token; the log (Jupyter's, the proxy's
    # and labtrack's, which share it) never shows it.
    assert lab.token not in lab.log()


def _walk_through(lab: JupyterLab, browser: Any, db: Path) -> None:
    # 1. A notebook kernel in a subfolder logs with zero setup.
    kernel = start_kernel(lab, "projects/deep/train.ipynb")
    out = execute(lab, kernel, LOG_RUN.format(name="subfolder-run"))
    run_id = re.search(r"RUN (\w+)", out).group(1)  # type: ignore[union-attr]
    assert f"DB {db}" in out, out
    assert f"CWD {lab.root / 'projects' / 'deep'}" in out, out
    background = _owner(db)
    assert background is not None and background.idle_timeout > 0, "the kernel started a background server"

    # 2. Installed by pip, found by Jupyter with no extra command (the CLI check is slow: once).
    if lab.base_url == "/":
        assert re.search(r"labtrack v\S+ enabled OK \(python, labtrack\)", _labextension_listed())
    extensions = lab.get("lab/api/extensions").json()
    assert any(e["name"] == "labtrack" and e["enabled"] and e["installed"] for e in extensions), extensions
    info = lab.get("server-proxy/servers-info").json()
    entry = next(s for s in info["server_processes"] if s["name"] == "labtrack")
    assert entry["launcher_entry"]["enabled"] is False  # our own tile instead of the proxy's
    status = lab.get("labtrack-status").json()
    assert (status["running"], status["active_runs"], status["finished"]) == (True, 0, [])

    # 3. The tile opens the UI in a new browser tab, through the proxy, showing the run.
    page = open_lab_page(browser, lab)
    try:
        card = labtrack_card(page)
        assert card.count() == 1
        assert card.locator("svg").count() >= 1, "the tile shows labtrack's icon"
        with page.context.expect_page(timeout=90_000) as new_tab:
            card.click()
        ui = new_tab.value
        ui.wait_for_load_state()
        assert ui.url.startswith(lab.url("labtrack/")), ui.url
        ui.locator(".exp-name a", has_text="jupyter-e2e").click(timeout=90_000)
        ui.get_by_text("subfolder-run").first.wait_for(timeout=30_000)
        ui.close()
    finally:
        page.context.close()

    # The proxied server took over from the kernel's background server.
    owner = _wait(lambda: (o := _owner(db)) and o.pid != background.pid and o, 30, "the proxied server")
    assert not psutil.pid_exists(background.pid) or psutil.Process(background.pid).status() == "zombie"

    # 4. An artifact downloads through the proxy (same auth as every Jupyter URL).
    r = lab.get(f"labtrack/get-artifact?path=notes/hello.txt&run_uuid={run_id}")
    assert r.status_code == 200 and r.text == "hello from a subfolder"
    r = lab.get("labtrack/get-artifact?path=../../etc/passwd&run_uuid=" + run_id)
    assert r.status_code in (400, 403, 404)
    anonymous = __import__("requests").get(lab.url("labtrack/"), allow_redirects=False, timeout=30)
    assert anonymous.status_code in (302, 403), "the proxy demands Jupyter's login"
    status = lab.get("labtrack/api/2.0/labtrack/status").json()
    assert sum(status["runs_by_status"].values()) == 1

    # 5. Unix socket only, in a private folder; no TCP listener at all.
    assert owner.unix_socket and not owner.url
    assert stat.S_IMODE(os.stat(Path(owner.unix_socket).parent).st_mode) == 0o700
    assert len(os.fsencode(owner.unix_socket)) < 104
    server = psutil.Process(owner.pid)
    assert server.ppid() == lab.proc.pid  # started by Jupyter's proxy, watching it
    assert [c for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN] == []
    assert any(c.laddr == owner.unix_socket for c in server.net_connections(kind="unix"))

    # 6. The same kernel logs again: its client re-discovers the proxied server.
    execute(lab, kernel, LOG_RUN.format(name="after-takeover"))
    runs = lab.get("labtrack/ajax-api/2.0/mlflow/runs/search?" + _experiment_query(lab)).json()
    names = sorted(r["info"]["run_name"] for r in runs.get("runs", []))
    assert names == ["after-takeover", "subfolder-run"], runs
    assert _owner(db).pid == owner.pid, "no second server appeared"


def _experiment_query(lab: JupyterLab) -> str:
    exp = lab.get("labtrack/api/2.0/mlflow/experiments/get-by-name?experiment_name=jupyter-e2e").json()
    return "experiment_ids=" + exp["experiment"]["experiment_id"]


def test_status_endpoint_and_lab_tab_setting(tmp_path: Path, browser: Any) -> None:
    """`openIn: lab-tab` opens the UI inside JupyterLab (sandboxed iframe), restored on reload;
    the status bar shows the server; the status endpoint needs Jupyter's auth."""
    root, home = tmp_path / "root", tmp_path / "home"
    lab = start_lab(root, home, base_url="/user/alice/", settings={"openIn": "lab-tab", "statusInterval": 1})
    try:
        anonymous = __import__("requests").get(lab.url("labtrack-status"), timeout=30)
        assert anonymous.status_code == 403
        status = lab.get("labtrack-status", params={"since": "0"}).json()
        assert (status["running"], status["active_runs"], status["finished"]) == (False, 0, [])
        assert lab.get("labtrack-status", params={"since": "soon"}).status_code == 400
        page = open_lab_page(browser, lab)
        try:
            status_item = page.locator(".lt-StatusItem")
            status_item.get_by_text("labtrack: off").wait_for(timeout=30_000)
            labtrack_card(page).click()
            frame = page.locator("iframe[src$='/user/alice/labtrack/']")
            frame.wait_for(timeout=30_000)
            assert "allow-scripts" in (frame.get_attribute("sandbox") or "")
            page.frame_locator("iframe[src$='/user/alice/labtrack/']").locator("h1", has_text="Experiments") \
                .wait_for(timeout=90_000)
            status_item.get_by_text("labtrack: 0 active runs").wait_for(timeout=30_000)
            # Reload: the layout restorer reopens the tab.
            page.reload()
            page.locator(".lm-TabBar-tab", has_text="labtrack").wait_for(timeout=60_000)
            page.frame_locator("iframe[src$='/user/alice/labtrack/']").locator("h1", has_text="Experiments") \
                .wait_for(timeout=60_000)
        finally:
            page.context.close()
        owner = _owner(root / "mlruns.db")
        assert owner is not None and owner.unix_socket
        # lt.mlflow_env(): the unmodified mlflow client reaches the same server over TCP with a token.
        env = _mlflow_env_in_kernel(lab)
        assert env["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
        assert env["MLFLOW_TRACKING_TOKEN"]
        import requests

        unauth = requests.get(env["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/experiments/search?max_results=5",
                              timeout=30)
        assert unauth.status_code == 401
        names = _wait(lambda: lab.get("labtrack/api/2.0/mlflow/experiments/search?max_results=50")
                      .json().get("experiments"), 10, "experiments")
        assert "from-mlflow" in [e["name"] for e in names]
    finally:
        lab.stop()
    _wait(lambda: not _labtrack_processes(root), 15, "labtrack processes to exit")


def _mlflow_env_in_kernel(lab: JupyterLab) -> dict[str, str]:
    kernel = start_kernel(lab, "elsewhere/mlflow.ipynb")
    out = execute(lab, kernel, """
import json, labtrack as lt
env = lt.mlflow_env(apply=True)
import mlflow
mlflow.set_experiment("from-mlflow")
with mlflow.start_run():
    mlflow.log_metric("acc", 0.9)
print("ENV", json.dumps(env))
""")
    return json.loads(out.split("ENV ", 1)[1])

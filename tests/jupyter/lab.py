"""A real ``jupyter lab`` process for tests and benchmarks, and a kernel driven through its API.

Shared by ``tests/jupyter`` and ``bench/bench_jupyter.py``.  The lab runs with
``--allow-root`` (CI runs as root), a token, a temporary root dir and
isolated user config/data dirs, but with the environment's installed config,
so it loads labtrack exactly as ``pip install`` set it up.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.servers import free_port

START_TIMEOUT_S = 90.0


@dataclass
class JupyterLab:
    """One ``jupyter lab`` process; ``url(path)`` gives an address under its base_url."""

    root: Path
    base_url: str
    port: int
    token: str
    proc: subprocess.Popen
    log_path: Path
    kernels: list[str] = field(default_factory=list)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}{path.lstrip('/')}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url(path), headers=self.headers, timeout=kw.pop("timeout", 90), **kw)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, as a user's Ctrl-C-and-confirm or a Hub's stop does; the proxy stops its children."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def lab_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the lab: user-level Jupyter dirs isolated, no tracking settings."""
    env = dict(os.environ if base is None else base)
    for name in ("LABTRACK_DATABASE", "LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN",
                 "JUPYTER_CONFIG_DIR", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)
    for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                      ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"), ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces")):
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_lab(root: Path, home: Path, base_url: str = "/", settings: dict[str, Any] | None = None,
              python: str = sys.executable, env_base: dict[str, str] | None = None) -> JupyterLab:
    """Start ``jupyter lab`` on ``root`` with ``python`` (another venv's, say) and wait until its API answers."""
    root.mkdir(parents=True, exist_ok=True)
    env = lab_env(home, env_base)
    settings_dir = Path(env["JUPYTERLAB_SETTINGS_DIR"])
    # No "get notified about Jupyter news?" toast over the page (and no fetch for it).
    news = settings_dir / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    if settings:
        # Lab user settings, e.g. {"openIn": "lab-tab"} for labtrack's plugin.
        folder = settings_dir / "labtrack"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plugin.jupyterlab-settings").write_text(json.dumps(settings))
    port, token = free_port(), secrets.token_hex(16)
    log_path = home / "jupyter.log"
    cmd = [python, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
           f"--ServerApp.base_url={base_url}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log_path, "wb") as log:
        # The lab's own cwd is deliberately NOT the root dir: the proxy starts its
        # children in the server's cwd, and the database must still land in the root.
        proc = subprocess.Popen(cmd, cwd=str(home), env=env, stdout=log, stderr=subprocess.STDOUT)
    lab = JupyterLab(root=root, base_url=base_url, port=port, token=token, proc=proc, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log()}")
        try:
            if lab.get("api/status", timeout=2).status_code == 200:
                return lab
        except requests.RequestException:
            pass
        time.sleep(0.2)
    lab.stop()
    raise RuntimeError(f"jupyter lab did not answer within {START_TIMEOUT_S:.0f} s:\n{lab.log()}")


def _message(code: str, session: str) -> dict[str, Any]:
    return {
        "header": {"msg_id": uuid.uuid4().hex, "username": "test", "session": session,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }


def start_kernel(lab: JupyterLab, notebook_path: str) -> str:
    """A kernel for a notebook at ``notebook_path`` (relative to the root): it runs in that folder."""
    (lab.root / notebook_path).parent.mkdir(parents=True, exist_ok=True)
    r = requests.post(lab.url("api/sessions"), headers=lab.headers, timeout=60,
                      json={"path": notebook_path, "name": Path(notebook_path).name, "type": "notebook",
                            "kernel": {"name": "python3"}})
    r.raise_for_status()
    kernel_id = r.json()["kernel"]["id"]
    lab.kernels.append(kernel_id)
    return kernel_id


def execute(lab: JupyterLab, kernel_id: str, code: str, timeout: float = 120.0) -> str:
    """Run ``code`` in the kernel over Jupyter's websocket API; return its stdout, raise on error."""
    import websocket  # websocket-client, a dependency of jupyter_server

    ws_url = lab.url(f"api/kernels/{kernel_id}/channels").replace("http://", "ws://", 1)
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {lab.token}"], timeout=timeout)
    try:
        msg = _message(code, uuid.uuid4().hex)
        ws.send(json.dumps(msg))
        out: list[str] = []
        error: str | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(ws.recv())
            if reply.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind = reply["msg_type"]
            if kind == "stream":
                out.append(reply["content"]["text"])
            elif kind == "error":
                error = "\n".join(reply["content"]["traceback"])
            elif kind == "execute_reply":
                if reply["content"]["status"] != "ok" or error:
                    raise RuntimeError(f"kernel code failed:\n{error or reply['content']}\nstdout:\n{''.join(out)}")
                return "".join(out)
        raise TimeoutError(f"no execute_reply within {timeout} s; stdout so far:\n{''.join(out)}")
    finally:
        ws.close()


def open_lab_page(browser: Any, lab: JupyterLab, viewport: dict[str, int] | None = None) -> Any:
    """A page with JupyterLab loaded and its launcher shown."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(lab.url(f"lab?reset&token={lab.token}"))
    page.locator(".jp-LauncherCard").first.wait_for(timeout=60_000)
    return page


def labtrack_card(page: Any) -> Any:
    return page.locator(".jp-LauncherCard", has_text="labtrack")

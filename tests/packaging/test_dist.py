"""The sdist and the wheel carry the built web UI and lab extension: installing them needs no Node.

Builds the sdist from this checkout (npm builds the bundles), then, with no node or npm on
PATH, builds the wheel from the sdist, installs it into a new virtualenv and checks that the
installed server serves the UI (in Chromium), and that a real ``jupyter lab`` run by the venv's
Python lists the lab extension, shows the tile, and opens the UI through the proxy.
The venv sees the system's site-packages so that nothing is downloaded; labtrack itself
comes from the wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.jupyter.lab import labtrack_card, open_lab_page, start_lab
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_TOOLS = {"node", "nodejs", "npm", "npx", "corepack", "yarn", "yarnpkg", "jlpm"}


def _path_without_node(tmp: Path) -> str:
    """A PATH holding links to every tool of the current PATH except Node's."""
    folder = tmp / "bin-without-node"
    folder.mkdir()
    for part in os.environ.get("PATH", "").split(os.pathsep):
        if not part or not Path(part).is_dir():
            continue
        for tool in Path(part).iterdir():
            if tool.name in NODE_TOOLS or (folder / tool.name).exists():
                continue
            try:
                (folder / tool.name).symlink_to(tool)
            except OSError:
                pass
    return str(folder)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd[:4]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.skipif(shutil.which("npm") is None, reason="building the sdist from a checkout needs npm")
def test_sdist_and_wheel_install_and_work_without_node(tmp_path: Path, browser: Any) -> None:
    pytest.importorskip("build", reason="the `build` package is not installed")
    # Nothing steers which labtrack the venv imports but the venv itself.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABTRACK_", "MLFLOW_")) and k != "PYTHONPATH"}
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--sdist", "-o", str(dist), str(ROOT)], ROOT, env)
    (sdist,) = dist.glob("labtrack-*.tar.gz")
    names = tarfile.open(sdist).getnames()
    assert any(n.endswith("src/labtrack/static/ui/app.js") for n in names)
    assert any(n.endswith("labextension/labtrack_labextension/package.json") for n in names)

    bare = dict(env, PATH=_path_without_node(tmp_path))
    assert shutil.which("npm", path=bare["PATH"]) is None and shutil.which("node", path=bare["PATH"]) is None
    _run([sys.executable, "-m", "build", "--wheel", "-o", str(dist), str(sdist)], tmp_path, bare)
    (wheel,) = dist.glob("labtrack-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path, bare)
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--force-reinstall", "--no-deps", str(wheel)],
         tmp_path, bare)
    where = _run([py, "-c", "import labtrack, sys; print(labtrack.__file__)"], tmp_path, bare)
    assert where.strip().startswith(str(venv)), where
    # The wheel put the lab extension where Jupyter looks in this environment.
    ext = venv / "share" / "jupyter" / "labextensions" / "labtrack"
    assert (ext / "package.json").is_file() and list((ext / "static").glob("remoteEntry.*.js"))
    listed = subprocess.run([py, "-m", "jupyter", "labextension", "list"], cwd=tmp_path, env=bare,
                            capture_output=True, text=True, timeout=120)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"labtrack v0\.1\.0 enabled OK \(python, labtrack\)", plain), plain

    port = free_port()
    work = tmp_path / "project"
    work.mkdir()
    server = subprocess.Popen([str(venv / "bin" / "labtrack"), "server", "--port", str(port), "--no-token"],
                              cwd=work, env=bare, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the installed server did not start"
            time.sleep(0.2)
        assert "app.js" in requests.get(url, timeout=10).text
        page = browser.new_page()
        try:
            page.goto(url)
            page.locator("h1", has_text="Experiments").wait_for(timeout=30_000)
        finally:
            page.close()
    finally:
        server.terminate()
        server.wait(30)

    # The lab extension, the server extension and the proxy entry from the wheel work in a real
    # JupyterLab started by the venv's Python (still no Node on PATH): the tile opens the UI.
    lab = start_lab(tmp_path / "lab-root", tmp_path / "lab-home", python=py, env_base=bare)
    try:
        page = open_lab_page(browser, lab)
        try:
            card = labtrack_card(page)
            card.wait_for(timeout=60_000)
            with page.context.expect_page(timeout=90_000) as new_tab:
                card.click()
            ui = new_tab.value
            ui.wait_for_load_state()
            assert ui.url.startswith(lab.url("labtrack/")), ui.url
            ui.locator("h1", has_text="Experiments").wait_for(timeout=90_000)
        finally:
            page.context.close()
        # The proxied server is the venv's labtrack, on the lab's root folder.
        assert (tmp_path / "lab-root" / "mlruns.db").is_file()
    finally:
        lab.stop()

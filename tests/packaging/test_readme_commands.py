"""The README's two commands, from a fresh clone, in a venv outside the checkout.

A newcomer clones the repository, makes a venv somewhere else (``~/venvs/...``), and runs
``pip install . && labtrack server`` and ``pip install -e '.[test]' && python -m pytest``.
This test does exactly that in temporary folders: the clone and the venv are siblings, the
server answers and serves the UI, and the tests whose outcome depends on where the venv and
the checkout lie (the run's source and git facts, the editable install, the docs links) pass
when run from the clone with the venv's Python.  The venv sees the system's site-packages so
that nothing is downloaded; labtrack itself is the clone's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
# Tests that read where the program, its checkout and its venv are.
LOCATION_TESTS = ["tests/client/test_fluent.py", "tests/unit/test_docs_links.py", "tests/client/test_discovery.py"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 1200) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd[:6])} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.mark.timeout(1800)  # a whole install with npm and pip, twice
@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("git") is None,
                    reason="installing from a clone needs npm and git")
def test_readme_commands_from_a_fresh_clone_with_the_venv_elsewhere(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABTRACK_", "MLFLOW_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clone, venv = tmp_path / "src" / "labtrack", tmp_path / "venvs" / "labtrack"
    # A clone holds what is committed: HEAD of this checkout.
    _run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], tmp_path, env)
    _run(["python3", "-m", "venv", "--system-site-packages", str(venv)], tmp_path, env)
    env = dict(env, PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv))

    # 1. pip install . && labtrack server
    _run(["pip", "install", "-q", "."], clone, env)
    work = tmp_path / "project"
    work.mkdir()
    port = free_port()
    server = subprocess.Popen(["labtrack", "server", "--port", str(port)], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"labtrack server did not start:\n{server.communicate(timeout=30)[0][-4000:]}")
            time.sleep(0.2)
        assert "app.js" in requests.get(f"http://127.0.0.1:{port}/", timeout=10).text
        assert (work / "mlruns.db").is_file()
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert "export MLFLOW_TRACKING_URI=" in out and "Traceback" not in out, out
    where = _run(["python", "-c", "import labtrack; print(labtrack.__file__)"], work, env)
    assert where.strip().startswith(str(venv)), where

    # 2. pip install -e '.[test]' && python -m pytest (the tests that depend on the locations)
    _run(["pip", "install", "-q", "-e", ".[test]"], clone, env)
    where = _run(["python", "-c", "import labtrack; print(labtrack.__file__)"], work, env)
    assert where.strip().startswith(str(clone)), where
    report = _run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *LOCATION_TESTS], clone, env)
    assert " passed" in report and "failed" not in report, report

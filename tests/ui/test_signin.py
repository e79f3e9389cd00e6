"""The sign-in page of a basic-auth server, in Debian's Chromium."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import stop, wait_healthy
from tests.servers import free_port
from tests.team.conftest import labtrack_cmd, launch
from tests.ui.conftest import _ensure_bundle

PASSWORD = "curie-Secret-1867"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _ensure_bundle()
    workdir = tmp_path_factory.mktemp("signin")
    made = subprocess.run([sys.executable, "-m", "labtrack", "users", "create", "marie", "--admin",
                           "--password-stdin", "--backend-store-uri", f"sqlite:///{workdir}/l.db"],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    port = free_port()
    proc, log = launch(labtrack_cmd(workdir, port, "--app-name", "basic-auth"), workdir, {}, "signin")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log, 120)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
    assert PASSWORD not in Path(log).read_text()


def test_sign_in_page(auth_server: str, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(auth_server + "/")
        page.wait_for_url("**/#/signin", timeout=30_000)
        page.fill("input[name=username]", "marie")
        page.fill("input[name=password]", "not-her-password")
        page.click("form.signin button")
        page.wait_for_selector("text=Wrong user name or password.", timeout=30_000)
        page.fill("input[name=password]", PASSWORD)
        page.click("form.signin button")
        page.wait_for_selector("text=Default", timeout=30_000)  # the experiments list, signed in
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies["labtrack_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert PASSWORD not in session["value"]
        # Signed out, the API refuses again.
        page.evaluate("fetch('api/2.0/labtrack/auth/sign-out', {method: 'POST'})")
        status = page.evaluate("fetch('ajax-api/2.0/mlflow/experiments/search?max_results=1').then(r => r.status)")
        assert status == 401
    finally:
        context.close()

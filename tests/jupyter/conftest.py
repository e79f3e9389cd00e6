"""Fixtures for the JupyterLab tests: a real ``jupyter lab`` and Debian's Chromium through Playwright."""

from __future__ import annotations

import pytest


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


@pytest.fixture(autouse=True)
def _needs_jupyter() -> None:
    _require("jupyterlab")
    _require("jupyter_server_proxy")

"""Fixtures for the JupyterLab tests: a real ``jupyter lab`` and Debian's Chromium through Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.jupyter.lab import CHROMIUM, launch_browser


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require("playwright")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture(autouse=True)
def _needs_jupyter() -> None:
    _require("jupyterlab")
    _require("jupyter_server_proxy")

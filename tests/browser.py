"""Debian's Chromium driven by Playwright (which never downloads a browser).

One Playwright instance per test session: Playwright's sync API runs its own
event loop, and a second instance started while the first lives refuses to
start ("Sync API inside the asyncio loop").
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("LABTRACK_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts this
# offline machine cannot reach.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)


def screenshot_path(name: str) -> Path:
    """Where a browser test saves its screenshot ``name``.

    The README's pictures (docs/screenshots/) are refreshed only when asked,
    with LABTRACK_UPDATE_SCREENSHOTS=1; otherwise a test run leaves the checkout
    as it found it and the pictures go to a scratch folder.
    """
    if os.environ.get("LABTRACK_UPDATE_SCREENSHOTS") == "1":
        folder = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
    else:
        folder = Path(tempfile.gettempdir()) / "labtrack-test-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name

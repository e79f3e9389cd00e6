"""Debian's Chromium driven by Playwright (which never downloads a browser).

One Playwright instance per test session: Playwright's sync API runs its own
event loop, and a second instance started while the first lives refuses to
start ("Sync API inside the asyncio loop").
"""

from __future__ import annotations

import os
from typing import Any

CHROMIUM = os.environ.get("LABTRACK_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts this
# offline machine cannot reach.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)

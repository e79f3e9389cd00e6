"""JupyterLab details users stumbled on: one browser tab for the UI, a restored Lab tab keeps its
page, and a SIGKILLed Jupyter leaves no socket folder behind (a real `jupyter lab`, Chromium)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.jupyter.lab import labtrack_card, open_lab_page, start_lab


def test_the_tile_reuses_the_browser_tab_it_opened(tmp_path: Path, browser: Any) -> None:
    lab = start_lab(tmp_path / "root", tmp_path / "home")
    try:
        page = open_lab_page(browser, lab)
        try:
            with page.context.expect_page() as opened:
                labtrack_card(page).click()
            ui = opened.value
            ui.wait_for_load_state()
            assert "/labtrack/" in ui.url
            labtrack_card(page).click()
            labtrack_card(page).click()
            page.wait_for_timeout(1500)
            assert len(page.context.pages) == 2, [p.url for p in page.context.pages]
        finally:
            page.context.close()
    finally:
        lab.stop()


def test_a_restored_lab_tab_keeps_its_route(tmp_path: Path, browser: Any) -> None:
    lab = start_lab(tmp_path / "root", tmp_path / "home", settings={"openIn": "lab-tab"})
    try:
        page = open_lab_page(browser, lab)
        try:
            labtrack_card(page).click()
            frame = page.frame_locator("iframe.lt-Frame, .lt-Frame iframe")
            frame.locator("h1", has_text="Experiments").wait_for(timeout=90_000)
            handle = page.locator(".lt-Frame iframe").element_handle()
            handle.content_frame().evaluate("location.hash = '#/models'")
            frame.locator("h1", has_text="Models").wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # the layout is saved after a debounce
            page.reload()
            page.locator(".lm-TabBar-tab", has_text="labtrack").wait_for(timeout=60_000)
            restored = page.locator(".lt-Frame iframe")
            restored.wait_for(timeout=60_000)
            assert (restored.get_attribute("src") or "").endswith("/labtrack/#/models")
            page.frame_locator(".lt-Frame iframe").locator("h1", has_text="Models").wait_for(timeout=60_000)
        finally:
            page.context.close()
    finally:
        lab.stop()


def _socket_folders(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.name.startswith("labtrack-"))


def test_a_sigkilled_jupyter_leaves_no_socket_folder(tmp_path: Path) -> None:
    sockets = Path(f"/tmp/lt-sock-{os.getpid()}")  # short: AF_UNIX paths are limited
    sockets.mkdir(exist_ok=True)
    os.environ["TMPDIR"], old = str(sockets), os.environ.get("TMPDIR")
    try:
        first = start_lab(tmp_path / "root", tmp_path / "home1")
        folders = _socket_folders(sockets)
        assert len(folders) == 1 and folders[0].name.startswith(f"labtrack-{first.proc.pid}-")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
        assert _socket_folders(sockets) == folders  # nothing ran at exit
        second = start_lab(tmp_path / "root", tmp_path / "home2")
        try:
            deadline = time.monotonic() + 10
            while _socket_folders(sockets) != [] and folders[0].exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            left = _socket_folders(sockets)
            assert len(left) == 1 and left[0].name.startswith(f"labtrack-{second.proc.pid}-"), left
        finally:
            second.stop()
        assert _socket_folders(sockets) == []  # a clean exit removes its own
    finally:
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old
        import shutil

        shutil.rmtree(sockets, ignore_errors=True)

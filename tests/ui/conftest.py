"""Fixtures for the web UI tests: a real labtrack server with real data, Debian's Chromium
driven by Playwright, and a tiny tornado proxy that serves everything under a path prefix
(as jupyter-server-proxy does at /user/<name>/labtrack/)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser import screenshot_path
from tests.servers import ServerProcess, free_port, start_server
from tests.ui.seed import Seeded, seed

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/user/alice/labtrack"


def _bundle_dir() -> Path:
    from labtrack.server import app

    return app.STATIC_UI


def _ensure_bundle() -> None:
    """The bundle is built by `pip install .`; in a source checkout build it here if missing."""
    index = _bundle_dir() / "index.html"
    if index.exists():
        return
    npm = shutil.which("npm")
    if npm is None or not (ROOT / "package.json").exists():
        pytest.skip(f"the web UI is not built ({index} is missing) and npm is not available to build it")
    subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    subprocess.run([npm, "run", "build"], cwd=ROOT, check=True)


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    try:
        import labtrack.server.app  # noqa: F401
    except ImportError as e:  # pragma: no cover - the server is part of the package
        pytest.skip(f"labtrack server not importable: {e}")
    _ensure_bundle()
    tmp = tmp_path_factory.mktemp("ui")
    srv = start_server(f"sqlite:///{tmp / 'mlruns.db'}", tmp)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def data(ui_server: ServerProcess) -> Seeded:
    return seed(ui_server)


class PageWatch:
    """Records every request the page makes, so a test can assert none left the origin."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def foreign(self) -> list[str]:
        out = []
        for u in self.urls:
            p = urlsplit(u)
            if p.scheme in ("data", "blob", "about"):
                continue
            if f"{p.scheme}://{p.netloc}" != self.origin:
                out.append(u)
        return out

    def paths(self) -> list[str]:
        return [urlsplit(u).path for u in self.urls if urlsplit(u).scheme.startswith("http")]


def open_page(browser: Any, base: str, token: str | None, viewport: tuple[int, int] = (1400, 900)) -> tuple[Any, Any, PageWatch]:
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
    page = ctx.new_page()
    parts = urlsplit(base)
    watch = PageWatch(page, f"{parts.scheme}://{parts.netloc}")
    # Opening the page once with ?token= makes the server set its cookie, as the launcher does.
    page.goto(base + ("?token=" + token if token else ""))
    page.wait_for_selector(".topbar")
    return ctx, page, watch


@pytest.fixture
def ui(browser: Any, ui_server: ServerProcess, data: Seeded) -> Iterator[tuple[Any, PageWatch]]:
    ctx, page, watch = open_page(browser, ui_server.url + "/", ui_server.token)
    yield page, watch
    assert watch.foreign() == [], "the page made requests outside the server's origin"
    assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"
    assert page.evaluate("window.__xss") is None, "a logged string was executed as markup"
    ctx.close()


def goto(page: Any, hash_route: str) -> None:
    """Navigate within the app, as a click on a link would."""
    page.evaluate("h => { location.hash = h }", hash_route)


DOCS_VIEWPORT = (1280, 800)  # the size of the pictures in README.md and docs/


def _settle(page: Any) -> None:
    """Lets the page lay itself out again after a resize (the runs table refits 100 ms after)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_timeout(400)


def screenshot(page: Any, name: str, locator: Any = None, viewport: tuple[int, int] | None = None) -> None:
    """Saves a picture of the page (or of ``locator``); with ``viewport``, taken at that window
    size and the window's size restored after."""
    before = page.viewport_size
    if viewport is not None:
        page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
        _settle(page)
    try:
        (locator or page).screenshot(path=str(screenshot_path(name)))
    finally:
        if viewport is not None:
            page.set_viewport_size(before)
            _settle(page)


# ---- a path-prefix proxy, standing in for jupyter-server-proxy

class PrefixProxy:
    """Serves <PREFIX>/... by forwarding to the labtrack server at /..., in a thread."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{PREFIX}/"
        self.paths: list[str] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        from tornado import httpclient, web
        from tornado.httpserver import HTTPServer

        proxy = self
        asyncio.set_event_loop(asyncio.new_event_loop())

        class Forward(web.RequestHandler):
            SUPPORTED_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")

            async def _forward(self, rest: str) -> None:
                proxy.paths.append(self.request.path)
                url = proxy.upstream + "/" + rest + (("?" + self.request.query) if self.request.query else "")
                headers = dict(self.request.headers)
                headers["X-Forwarded-Prefix"] = PREFIX
                body = self.request.body if self.request.method in ("POST", "PUT", "PATCH", "DELETE") else None
                req = httpclient.HTTPRequest(url, method=self.request.method, headers=headers, body=body,
                                             follow_redirects=False, allow_nonstandard_methods=True)
                resp = await httpclient.AsyncHTTPClient().fetch(req, raise_error=False)
                self.set_status(resp.code, resp.reason)
                for k, v in resp.headers.get_all():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.add_header(k, v)
                if resp.body:
                    self.write(resp.body)

            get = post = put = delete = patch = head = _forward  # type: ignore[assignment]

        class Slash(web.RequestHandler):
            def get(self) -> None:
                self.redirect(PREFIX + "/")

        app = web.Application([(PREFIX, Slash), (PREFIX + r"/(.*)", Forward)])
        srv = HTTPServer(app)
        srv.listen(self.port, "127.0.0.1")
        self._ready.set()
        asyncio.get_event_loop().run_forever()


@pytest.fixture(scope="session")
def prefix_proxy(ui_server: ServerProcess) -> PrefixProxy:
    return PrefixProxy(ui_server.url)

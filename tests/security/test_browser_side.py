"""Item 7 of issue #19: the browser side (cookie, framing, DNS rebinding, cross-origin writes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.security.conftest import exchange, status_of
from tests.servers import ServerProcess, start_server


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """--no-token: the Host check is all that stands between a rebinding page and the API."""
    workdir = tmp_path_factory.mktemp("notoken")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir, token=None,
                       extra=["--allowed-hosts", "tracker.example,*.lab.example",
                              "--cors-allowed-origins", "http://app.example"])
    try:
        yield srv
    finally:
        srv.stop()


def _get(srv: ServerProcess, path: str, host: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers, "Connection: close"]
    return exchange(srv, ("\r\n".join(lines) + "\r\n\r\n").encode())


@pytest.mark.parametrize("host", ["evil.example", "evil.example:5000", "127.0.0.1.evil.example", ""])
def test_foreign_host_header_is_refused(open_server: ServerProcess, host: str) -> None:
    for path in ("/", "/api/2.0/mlflow/experiments/search?max_results=1"):
        reply = _get(open_server, path, host)
        assert status_of(reply) == 403, (path, reply[:200])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:1234", "[::1]:80", "tracker.example",
                                  "gpu.lab.example:8443", "10.1.2.3", "[fd00::1]:5000"])
def test_loopback_and_allowed_hosts_are_served(open_server: ServerProcess, host: str) -> None:
    port = open_server.url.rsplit(":", 1)[1]
    for h in (host, f"{host}:{port}" if ":" not in host.replace("[::1]", "") else host):
        reply = _get(open_server, "/api/2.0/mlflow/experiments/search?max_results=1", h)
        assert status_of(reply) == 200, (h, reply[:200])


def test_cross_origin_write_is_refused_and_a_configured_origin_gets_cors(open_server: ServerProcess) -> None:
    url = open_server.url + "/api/2.0/mlflow/experiments/create"
    bad = requests.post(url, json={"name": "from-evil"}, headers={"Origin": "http://evil.example"}, timeout=10)
    assert bad.status_code == 403
    # Another port of localhost belongs to another user on a login node: not trusted either.
    port_neighbour = requests.post(url, json={"name": "from-neighbour"},
                                   headers={"Origin": "http://127.0.0.1:1"}, timeout=10)
    assert port_neighbour.status_code == 403
    same = requests.post(url, json={"name": "same-origin"}, headers={"Origin": open_server.url}, timeout=10)
    assert same.status_code == 200, same.text
    pre = requests.options(url, headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type"}, timeout=10)
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "http://app.example"
    ok = requests.post(url, json={"name": "from-app"}, headers={"Origin": "http://app.example"}, timeout=10)
    assert ok.status_code == 200 and ok.headers.get("Access-Control-Allow-Origin") == "http://app.example"


def test_pages_may_be_framed_by_the_same_origin_only(server: ServerProcess) -> None:
    for path in ("/", "/static/favicon.svg"):
        r = requests.get(server.url + path, timeout=10)
        assert r.headers.get("X-Frame-Options") == "SAMEORIGIN", path
        assert "frame-ancestors 'self'" in r.headers.get("Content-Security-Policy", ""), path


def test_a_wrong_token_in_the_link_sets_no_cookie(server: ServerProcess) -> None:
    r = requests.get(server.url + "/?token=anything-at-all", allow_redirects=False, timeout=10)
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    assert r.json()["error_code"] == "UNAUTHENTICATED"


def test_cookie_is_named_for_its_server_and_is_not_the_token(server: ServerProcess, tmp_path: Path) -> None:
    r = requests.get(f"{server.url}/?token={server.token}", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    [(name, value)] = r.cookies.items()
    assert name.startswith("labtrack_token_") and value != server.token and server.token not in value
    set_cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    # The cookie logs the browser in ...
    api = server.url + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(api, cookies={name: value}, timeout=10).status_code == 200
    # ... while the old shared name, even holding the real token, does not.
    assert requests.get(api, cookies={"labtrack_token": server.token}, timeout=10).status_code == 401
    # A second server on another port of the same host gets a cookie of another name.
    other = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    try:
        r2 = requests.get(f"{other.url}/?token={other.token}", allow_redirects=False, timeout=10)
        [(name2, value2)] = r2.cookies.items()
        assert name2 != name
        assert requests.get(api, cookies={name2: value2}, timeout=10).status_code == 401
    finally:
        other.stop()

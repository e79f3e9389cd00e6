"""The process jupyter-server-proxy runs (``python -m labtrack.jupyter.launch``), without a browser.

Real processes on real sockets: the exit status is never 0, a background server
is taken over, a deliberately started one is waited out with a page naming it,
a dead parent stops it, and ``lt.mlflow_env()`` opens a token-guarded TCP listener.
"""

from __future__ import annotations

import http.client
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from labtrack.ownership import read_owner

pytestmark = pytest.mark.timeout(180)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def unix_get(sock: Path, path: str) -> tuple[int, str]:
    conn = _UnixConnection(str(sock))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # pytest's tmp_path can be too long for AF_UNIX; sockets go under a short private folder.
    with tempfile.TemporaryDirectory(prefix="lt-", dir="/tmp") as d:
        yield Path(d)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("LABTRACK_", "MLFLOW_TRACKING")):
            env.pop(name)
    return env


def launch(db: Path, sock: Path, parent_pid: int | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "labtrack.jupyter.launch", "--database", str(db),
           "--artifacts-destination", str(db.parent / "mlruns"), "--unix-socket", str(sock),
           "--parent-pid", str(parent_pid or os.getpid())]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def labtrack_server(db: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "labtrack", "server", "--backend-store-uri", f"sqlite:///{db}",
           "--artifacts-destination", str(db.parent / "mlruns"), "--port", "0", *extra]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _served_by(db: Path, pid: int) -> bool:
    owner = read_owner(db)
    return bool(owner and owner.pid == pid and (owner.url or owner.unix_socket))


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def test_serves_on_the_socket_and_never_exits_zero(tmp_path: Path, short_tmp: Path) -> None:
    db, sock = tmp_path / "mlruns.db", short_tmp / "socket"
    proc = launch(db, sock)
    try:
        _wait(lambda: _served_by(db, proc.pid), 60, "the launcher to own the database")
        assert unix_get(sock, "/health") == (200, "OK")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert read_owner(db).url is None  # type: ignore[union-attr]
    finally:
        code = _stop(proc)
    # SIGTERM from anyone but the proxy must not look like "done" to it: the proxy never
    # restarts a process that exited 0 (and ignores the status when it stopped us itself).
    assert code == 1
    assert read_owner(db) is None
    assert not sock.exists()


def test_takes_over_a_background_server(tmp_path: Path, short_tmp: Path) -> None:
    db, sock = tmp_path / "mlruns.db", short_tmp / "socket"
    background = labtrack_server(db, "--idle-timeout", "900")
    proc = None
    try:
        _wait(lambda: _served_by(db, background.pid), 60, "the background server")
        proc = launch(db, sock)
        _wait(lambda: _served_by(db, proc.pid), 60, "the takeover")
        assert background.wait(30) == 0  # it was asked to stop, and stopped cleanly
        assert unix_get(sock, "/health")[0] == 200
    finally:
        _stop(background)
        if proc is not None:
            _stop(proc)


def test_waits_out_a_server_started_on_purpose(tmp_path: Path, short_tmp: Path) -> None:
    db, sock = tmp_path / "mlruns.db", short_tmp / "socket"
    deliberate = labtrack_server(db)  # no idle timeout: someone wants it running
    proc = None
    try:
        _wait(lambda: _served_by(db, deliberate.pid), 60, "the deliberate server")
        proc = launch(db, sock)
        _wait(sock.exists, 60, "the launcher's socket")
        status, body = unix_get(sock, "/")
        assert status == 503
        assert f"pid {deliberate.pid}" in body and str(db) in body
        assert deliberate.poll() is None, "a server started on purpose is left alone"
        _stop(deliberate)
        _wait(lambda: _served_by(db, proc.pid), 60, "the launcher to take the free database")
        assert unix_get(sock, "/health") == (200, "OK")
    finally:
        _stop(deliberate)
        if proc is not None:
            _stop(proc)


# What a server of a version before 0.3 does: the record and its lock in ``<db>.lock``.
_OLD_SERVER = """
import fcntl, json, os, socket, sys, time
fd = os.open(sys.argv[1] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1 << 20)
os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "database": sys.argv[1],
                         "url": "http://127.0.0.1:1", "version": "0.2.0"}).encode())
print("ready", flush=True)
time.sleep(600)
"""


def test_the_lock_lives_in_mlruns_and_an_older_servers_lock_is_still_honoured(
        tmp_path: Path, short_tmp: Path) -> None:
    """Issue 20: the root showed mlruns.db.lock.  The record is in mlruns/.labtrack/ now, but a
    server started by an older labtrack (record beside the database) still counts as the owner."""
    db, sock = tmp_path / "mlruns.db", short_tmp / "socket"
    old = subprocess.Popen([sys.executable, "-c", _OLD_SERVER, str(db)], stdout=subprocess.PIPE)
    proc = None
    try:
        assert old.stdout is not None and old.stdout.readline().strip() == b"ready"
        assert read_owner(db) is not None and read_owner(db).pid == old.pid  # type: ignore[union-attr]
        proc = launch(db, sock)
        _wait(sock.exists, 60, "the launcher's socket")
        status, body = unix_get(sock, "/")
        assert status == 503 and f"pid {old.pid}" in body  # waited out, not a second owner
        _stop(old)
        _wait(lambda: _served_by(db, proc.pid), 60, "the launcher to take the free database")
        assert (tmp_path / "mlruns" / ".labtrack" / "mlruns.db.lock").is_file()
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
            "mlruns", "mlruns.db", "mlruns.db.lock"]  # the old server's file stays as it left it
        assert f'"pid": {old.pid}' in (tmp_path / "mlruns.db.lock").read_text()  # never rewritten
    finally:
        _stop(old)
        if proc is not None:
            _stop(proc)


def test_exits_when_its_parent_dies(tmp_path: Path, short_tmp: Path) -> None:
    db, sock = tmp_path / "mlruns.db", short_tmp / "socket"
    # A stand-in for Jupyter: starts the launcher with itself as parent, then dies without a word.
    parent = subprocess.run(
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         f"p = subprocess.Popen([sys.executable, '-m', 'labtrack.jupyter.launch', '--database', {str(db)!r},"
         f" '--artifacts-destination', {str(tmp_path / 'mlruns')!r}, '--unix-socket', {str(sock)!r},"
         " '--parent-pid', str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
         "print(p.pid, flush=True)\n"
         f"deadline = time.time() + 60\n"
         f"while not os.path.exists({str(sock)!r}) and time.time() < deadline: time.sleep(0.05)\n"
         "os._exit(0)\n"],
        capture_output=True, text=True, timeout=90, env=_env())
    child = int(parent.stdout.split()[0])
    _wait(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE,
          30, "the orphaned launcher to exit")
    _wait(lambda: read_owner(db) is None, 10, "the record to be released")


def test_mlflow_env_opens_a_token_guarded_tcp_listener(tmp_path: Path, short_tmp: Path) -> None:
    import labtrack as lt

    db, sock = tmp_path / "mlruns.db", short_tmp / "socket"
    proc = launch(db, sock)
    try:
        _wait(lambda: _served_by(db, proc.pid), 60, "the launcher")
        server = psutil.Process(proc.pid)
        assert not [c for c in server.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        env = lt.mlflow_env(db)
        url, token = env["MLFLOW_TRACKING_URI"], env["MLFLOW_TRACKING_TOKEN"]
        assert url.startswith("http://127.0.0.1:") and len(token) >= 20
        listening = [c for c in server.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
        search = "/api/2.0/mlflow/experiments/search?max_results=5"
        assert requests.get(url + search, timeout=30).status_code == 401
        assert requests.get(url + search, headers={"Authorization": f"Bearer {token}"},
                            timeout=30).status_code == 200
        assert unix_get(sock, search)[0] == 200  # the private socket needs no token
        assert lt.mlflow_env(db) == env  # asked again: the same listener
        owner = read_owner(db)
        assert owner is not None and owner.url == url and owner.token == token
    finally:
        assert _stop(proc) == 1


def test_socket_path_falls_back_from_a_long_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labtrack.jupyter import paths

    long_tmp = tmp_path / ("x" * 60) / ("y" * 60)
    long_tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    sock = paths.private_socket_path()
    try:
        assert len(os.fsencode(str(sock))) <= paths.MAX_SOCKET_PATH
        assert not str(sock).startswith(str(long_tmp))
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        # and it really binds
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(sock))
    finally:
        sock.unlink(missing_ok=True)
        sock.parent.rmdir()


def test_database_is_under_the_jupyter_root_or_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labtrack.jupyter import paths

    monkeypatch.delenv("LABTRACK_DATABASE", raising=False)
    assert paths.database_path(tmp_path) == tmp_path.resolve() / "mlruns.db"
    monkeypatch.setenv("LABTRACK_DATABASE", str(tmp_path / "shared" / "team.db"))
    assert paths.database_path(tmp_path / "elsewhere") == (tmp_path / "shared" / "team.db").resolve()


def test_proxy_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from labtrack.jupyter import setup_labtrack

    monkeypatch.setenv("LABTRACK_DATABASE", str(tmp_path / "mlruns.db"))
    spec = setup_labtrack()
    try:
        assert spec["absolute_url"] is False and spec["timeout"] >= 30
        assert spec["launcher_entry"]["enabled"] is False
        sock = Path(spec["unix_socket"])
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        cmd = spec["command"](unix_socket=str(sock))
        assert cmd[cmd.index("--database") + 1] == str(tmp_path / "mlruns.db")
        assert cmd[cmd.index("--parent-pid") + 1] == str(os.getpid())
        assert "--port" not in cmd
    finally:
        sock.parent.rmdir()


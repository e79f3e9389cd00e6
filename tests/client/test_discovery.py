"""Zero-setup discovery: no tracking URI, a database in a folder, one server per database.

These need the labtrack server (the client starts it); they skip until it exists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import labtrack as lt
from labtrack.ownership import read_owner

from .conftest import CLIENT_ENV, labtrack_server_available

pytestmark = pytest.mark.skipif(bool(labtrack_server_available()),
                                reason=labtrack_server_available() or "")

SCRIPT = textwrap.dedent("""
    import sys
    import labtrack as lt
    with lt.start_run(run_name=sys.argv[1]):
        lt.log_param("who", sys.argv[1])
        for i in range(100):
            lt.log_metric("m", float(i), step=i)
    print(lt.get_tracking_uri())
""")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(lt.__file__).parents[1]),
                                         env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def launch(cwd: Path, name: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, name], cwd=cwd, env=clean_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def server_pids(db: Path) -> list[int]:
    """Live `labtrack server` processes for ``db`` (from /proc: no psutil needed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if b"server" in argv and f"sqlite:///{db}".encode() in argv:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh folder; every server started for a database under it is stopped afterwards."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    yield tmp_path
    for db in tmp_path.rglob("mlruns.db"):
        for pid in server_pids(db):
            os.kill(pid, signal.SIGTERM)


def runs_in(db: Path) -> list[lt.Run]:
    client = lt.Client(f"sqlite:///{db}")  # finds the running server through its record
    return client.search_runs(["0"])


def test_two_scripts_at_once_share_one_server(folder: Path) -> None:
    db = folder / "mlruns.db"
    first, second = launch(folder, "one"), launch(folder, "two")
    uris = {finish(first).strip(), finish(second).strip()}
    record = read_owner(db)
    assert record is not None and record.url
    assert uris == {record.url}  # both found the same server
    deadline = time.monotonic() + 10
    while len(server_pids(db)) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # a server that lost the race may still be exiting
    assert server_pids(db) == [record.pid]
    runs = runs_in(db)
    assert sorted(r.info.run_name for r in runs) == ["one", "two"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.params["who"] for r in runs) == ["one", "two"]
    log = folder / "mlruns" / ".server.log"
    assert log.stat().st_mode & 0o077 == 0  # it may hold the server's token


def test_database_in_a_parent_folder_is_found(folder: Path) -> None:
    finish(launch(folder, "top"))
    deeper = folder / "a" / "b"
    deeper.mkdir(parents=True)
    finish(launch(deeper, "deep"))
    assert not (deeper / "mlruns.db").exists()
    assert sorted(r.info.run_name for r in runs_in(folder / "mlruns.db")) == ["deep", "top"]


def test_labtrack_database_names_the_jupyter_database(folder: Path) -> None:
    project = folder / "project"
    elsewhere = folder / "notebooks" / "sub"
    project.mkdir()
    elsewhere.mkdir(parents=True)
    db = project / "mlruns.db"
    finish(launch(elsewhere, "from-kernel", LABTRACK_DATABASE=str(db)))
    assert not (elsewhere / "mlruns.db").exists()
    assert [r.info.run_name for r in runs_in(db)] == ["from-kernel"]


def test_explicit_uri_wins_over_a_database_in_the_folder(folder: Path) -> None:
    finish(launch(folder, "local"))
    other = folder / "other"
    other.mkdir()
    finish(launch(folder, "redirected", MLFLOW_TRACKING_URI=f"sqlite:///{other}/mlruns.db"))
    assert [r.info.run_name for r in runs_in(folder / "mlruns.db")] == ["local"]
    assert [r.info.run_name for r in runs_in(other / "mlruns.db")] == ["redirected"]


def test_client_restarts_a_server_that_went_away(folder: Path) -> None:
    db = folder / "mlruns.db"
    client = lt.Client(f"sqlite:///{db}")
    run = client.create_run("0")
    first = read_owner(db)
    assert first is not None
    os.kill(first.pid, signal.SIGTERM)  # as if it exited after being idle
    deadline = time.monotonic() + 10
    while read_owner(db) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    client.log_metric(run.info.run_id, "m", 1.0, synchronous=True)
    client.set_terminated(run.info.run_id)
    second = read_owner(db)
    assert second is not None and second.pid != first.pid
    got = client.get_run(run.info.run_id)
    assert got.data.metrics == {"m": 1.0} and got.info.status == "FINISHED"

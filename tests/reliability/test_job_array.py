"""Job-array tasks that start together all file their runs under their experiment (issue #22).

32 forked tasks wait on one barrier, then each runs ``set_experiment("sweep")`` and a
run (bench/job_array.py is the workload and the barrier).  With the unmodified
mlflow client, a lost create race made a task's run land in Default; labtrack's
server answers a racing create with the experiment's id (store/experiment_race.py).
Five rounds, each on a fresh server and database; the runs are counted in the
database itself, never through the code under test.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import PostgresDatabases, ServerProcess, start_server

from .conftest import child_env, query

# 32 processes per round on a 2-core machine shared with other work: minutes, not seconds.
pytestmark = pytest.mark.timeout(1200)

JOB_ARRAY = Path(__file__).resolve().parents[2] / "bench" / "job_array.py"
TASKS = 32
ROUNDS = 5


def runs_by_experiment(db: Path) -> dict[str, int]:
    return dict(query(db, """SELECT e.name, COUNT(r.run_uuid) FROM experiments e
                             LEFT JOIN runs r ON r.experiment_id = e.experiment_id
                             GROUP BY e.experiment_id"""))


def drive(client: str, *where: str, token: str | None = None) -> list[dict]:
    cmd = [sys.executable, str(JOB_ARRAY), "--client", client, "--n", str(TASKS), *where]
    cmd += ["--token", token] if token else []
    out = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rounds = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    for r in rounds:
        assert r["failed"] == [], out.stderr[-3000:]
    return rounds


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[list[ServerProcess], str]]:
    token = secrets.token_hex(8)
    started: list[ServerProcess] = []
    try:
        for k in range(ROUNDS):
            folder = tmp_path / f"round{k}"
            folder.mkdir()
            started.append(start_server(f"sqlite:///{folder / 'mlruns.db'}", folder, token=token))
        yield started, token
    finally:
        for s in started:
            s.stop()


@pytest.mark.parametrize("client", ["mlflow", "lt"])
def test_every_task_of_a_job_array_lands_in_its_experiment(
        client: str, servers: tuple[list[ServerProcess], str], tmp_path: Path) -> None:
    procs, token = servers
    where = [a for s in procs for a in ("--uri", s.url)]
    rounds = drive(client, *where, token=token)
    assert len(rounds) == ROUNDS
    for k, r in enumerate(rounds):
        assert (r["sweep"], r["default"]) == (TASKS, 0), f"round {k}: {r}"
        db = tmp_path / f"round{k}" / "mlruns.db"
        assert runs_by_experiment(db) == {"Default": 0, "sweep": TASKS}, f"round {k}"


def test_every_task_lands_in_its_experiment_on_postgresql_with_workers(
        pg_databases: PostgresDatabases | None, tmp_path: Path) -> None:
    """A team server: 4 processes share the socket; a lookup and its create may meet different
    processes' writers, and two creates of one name meet in PostgreSQL's unique index."""
    if pg_databases is None:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
    token = secrets.token_hex(8)
    for k in range(2):
        url = pg_databases.create()
        folder = tmp_path / f"pg{k}"
        folder.mkdir()
        srv = start_server(url, folder, token=token, extra=["--workers", "4"])
        try:
            (r,) = drive("mlflow", "--uri", srv.url, token=token)
        finally:
            srv.stop()
            pg_databases.drop(url)
        assert (r["sweep"], r["default"]) == (TASKS, 0), f"round {k}: {r}"
        assert "Traceback" not in srv.log(), srv.log()[-3000:]


def test_every_spooled_task_lands_in_its_experiment(tmp_path: Path) -> None:
    """Tasks that cannot reach a server spool; ingest resolves "sweep" by name, once."""
    dbs = []
    for k in range(ROUNDS):
        (tmp_path / f"round{k}").mkdir()
        dbs.append(tmp_path / f"round{k}" / "mlruns.db")
    drive("lt", *[a for db in dbs for a in ("--spool", str(db))])
    for k, db in enumerate(dbs):
        assert not db.exists()  # the tasks spooled; none opened the database
        out = subprocess.run([sys.executable, "-m", "labtrack", "sync", str(db.parent)], env=child_env(),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert runs_by_experiment(db) == {"Default": 0, "sweep": TASKS}, f"round {k}"
        names = query(db, "SELECT name FROM runs ORDER BY name")
        assert sorted(n for (n,) in names) == sorted(f"w{i}" for i in range(TASKS))

"""Sixteen processes started at the same instant on an empty folder: all succeed, one schema.

MLflow 3 crashes here (each process migrates the new SQLite file itself).  A
labtrack client never opens the database: each one finds no server and starts
one; one server wins the ownership record and creates the schema, the others
stop, and every client logs through the winner.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labtrack.ownership import read_owner
from labtrack.store.migrate import HEAD

from .conftest import BARRIER_CODE, Barrier, child_env, finish_all, integrity, launch, metric_counts, query

PROCESSES = 16

ZERO_SETUP = """
import sys
import labtrack as lt
""" + BARRIER_CODE + """
with lt.start_run(run_name=sys.argv[1]):
    lt.log_param("n", sys.argv[1])
    for i in range(200):
        lt.log_metric("loss", i / 200, step=i)
print(lt.get_tracking_uri())
"""


@pytest.mark.timeout(600)  # 16 clients and the servers they start, on a small busy machine
def test_sixteen_processes_on_an_empty_folder_share_one_new_database(folder: Path) -> None:
    barrier = Barrier(folder.parent / f"{folder.name}-barrier")
    # A busy 2-core machine may need more than the default 15 s to start the servers.
    env = child_env(TEST_BARRIER=str(barrier.folder), LABTRACK_SERVER_START_TIMEOUT="120")
    procs = [launch(ZERO_SETUP, f"p{i:02d}", cwd=folder, env=env) for i in range(PROCESSES)]
    barrier.wait_ready(PROCESSES, procs)
    barrier.go(procs)
    results = finish_all(procs)

    failures = [(code, err[-1500:]) for code, _, err in results if code != 0]
    assert failures == [], failures[:1]
    db = folder / "mlruns.db"
    owner = read_owner(db)
    assert owner is not None
    # Every client logged through the one server that won.
    assert {out.strip() for _, out, _ in results} == {owner.url or owner.unix_socket}
    assert sorted(p.name for p in folder.glob("*.db")) == ["mlruns.db"]
    assert query(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert metric_counts(db) == {f"p{i:02d}": (200, 200) for i in range(PROCESSES)}
    assert integrity(db) == "ok"

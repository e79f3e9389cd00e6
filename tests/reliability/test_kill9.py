"""kill -9 the server under load: acknowledged writes survive, clients keep what is queued.

``PRAGMA integrity_check`` must pass after the restart, every write that a
client saw acknowledged must be there, and a client whose server vanished
mid-run must deliver everything it logged (its queue goes to the spool file
and the restarted server ingests it).
"""

from __future__ import annotations

import time
from pathlib import Path

from labtrack.spool import spool_folder
from tests.servers import start_server

from .conftest import BARRIER_CODE, Barrier, child_env, finish_all, integrity, launch, metric_counts, query, wait_until

WRITERS = 8
BATCH = 100

# Logs synchronously, batch after batch, and notes each batch the server acknowledged.
ACKED_WRITER = """
import sys, time
import labtrack as lt
from labtrack.entities import Metric
""" + BARRIER_CODE + """
url, name, acks = sys.argv[1], sys.argv[2], sys.argv[3]
client = lt.Client(url)
run_id = client.create_run("0", run_name=name).info.run_id
with open(acks, "a") as out:
    out.write("run\\n")
    out.flush()
    batch = 0
    while True:
        points = [Metric("loss", float(s), 1000 + s, s) for s in range(batch * %d, (batch + 1) * %d)]
        try:
            client.log_batch(run_id, metrics=points, synchronous=True)
        except Exception as e:
            print(type(e).__name__, file=sys.stderr)
            break
        out.write(f"{batch}\\n")
        out.flush()
        batch += 1
""" % (BATCH, BATCH)


def acked_batches(path: Path) -> int:
    lines = path.read_text().splitlines() if path.exists() else []
    return len(lines) - 1 if lines else 0


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    server = start_server(f"sqlite:///{db}", tmp_path)
    restarted = None
    try:
        barrier = Barrier(tmp_path / "barrier")
        env = child_env(TEST_BARRIER=str(barrier.folder), LABTRACK_TRACKING_TOKEN=server.token or "",
                        LABTRACK_HTTP_REQUEST_MAX_RETRIES="0")
        acks = [tmp_path / f"acks-{i}.txt" for i in range(WRITERS)]
        procs = [launch(ACKED_WRITER, server.url, f"w{i}", str(acks[i]), cwd=tmp_path, env=env)
                 for i in range(WRITERS)]
        barrier.wait_ready(WRITERS, procs)
        barrier.go(procs)
        # Under load: every writer has had several batches acknowledged, and more are in flight.
        assert wait_until(lambda: all(acked_batches(a) >= 5 for a in acks), timeout=60, interval=0.05)
        server.proc.kill()  # SIGKILL: no shutdown, no final commit
        server.proc.wait()
        results = finish_all(procs, timeout=120)
        assert all(code == 0 for code, _, _ in results), [err[-500:] for _, _, err in results]

        restarted = start_server(f"sqlite:///{db}", tmp_path)
        assert integrity(db) == "ok"
        counts = metric_counts(db)
        for i, path in enumerate(acks):
            acked = acked_batches(path) * BATCH
            present = query(db, """SELECT COUNT(DISTINCT m.step) FROM metrics m JOIN metric_series USING (series_id) JOIN runs r USING (run_uuid)
                                   WHERE r.name = :name AND m.step < :acked""", name=f"w{i}", acked=acked)[0][0]
            assert present == acked, f"writer {i}: {acked} points acknowledged, {present} stored"
            assert counts[f"w{i}"][0] >= acked
        # The restarted server takes writes as before.
        run = restarted.api("POST", "runs/create", {"experiment_id": "0"}).json()["run"]["info"]["run_id"]
        assert restarted.api("POST", "runs/log-metric", {"run_id": run, "key": "x", "value": 1,
                                                         "timestamp": 1, "step": 0}).status_code == 200
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


SURVIVOR = """
import sys, time
from pathlib import Path
import labtrack as lt
lt.set_experiment("survivor")
with lt.start_run(run_name="survivor"):
    lt.log_param("p", "1")
    for i in range(%d):
        lt.log_metric("loss", i / 7, step=i)
        if i == 500:
            lt.flush()
            Path(sys.argv[1]).touch()  # the server has the first 500 points
        time.sleep(0.001)
print(lt.get_tracking_uri())
"""
SURVIVOR_POINTS = 3000


def test_a_client_that_loses_its_server_keeps_its_writes(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    server = start_server(f"sqlite:///{db}", tmp_path)
    restarted = None
    try:
        marker = tmp_path / "half-way"
        # A batch job: it may not start a server of its own when this one dies.
        env = child_env(LABTRACK_DATABASE=str(db), SLURM_JOB_ID="4242", LABTRACK_HTTP_REQUEST_MAX_RETRIES="1")
        proc = launch(SURVIVOR % SURVIVOR_POINTS, str(marker), cwd=tmp_path, env=env)
        assert wait_until(lambda: marker.exists() or proc.poll() is not None, timeout=60, interval=0.02)
        assert proc.poll() is None, proc.communicate()
        server.proc.kill()
        server.proc.wait()
        [(code, out, err)] = finish_all([proc])
        assert code == 0, err
        assert out.strip().startswith("http://")  # it was logging over HTTP...
        assert "spooling writes" in err  # ...and said where the rest went
        assert list(spool_folder(tmp_path / "mlruns.db").glob("*.jsonl"))

        restarted = start_server(f"sqlite:///{db}", tmp_path)  # ingests the spool
        done = wait_until(lambda: metric_counts(db).get("survivor") == (SURVIVOR_POINTS, SURVIVOR_POINTS)
                          and query(db, "SELECT status FROM runs WHERE name = 'survivor'") == [("FINISHED",)],
                          timeout=30)
        assert done, (metric_counts(db), query(db, "SELECT status FROM runs"))
        assert query(db, "SELECT COUNT(*) FROM runs") == [(1,)]
        assert integrity(db) == "ok"
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()

"""Throughput of ``labtrack server --workers N`` on PostgreSQL, for N = 1, 2 and 4.

Each figure starts a fresh database and server, then ``--clients`` client
processes (each its own connection and run) post ``runs/log-batch`` requests
of ``--points`` metric points for ``--seconds`` (and at most ``--max-requests``
each), on loopback.  It reports requests and points per second as the
clients saw them, and checks afterwards that the database holds every point
that was acknowledged, once.  With ``--mlflow`` it measures ``mlflow server
--workers N`` on its own fresh database beside it.

Run:  LABTRACK_TEST_POSTGRES_URL=postgresql+psycopg://postgres:labtrack@127.0.0.1:5432/postgres \\
      python bench/bench_workers.py [--workers 1 2 4] [--clients 8] [--seconds 10] [--mlflow]
Figures go to stdout and bench/results/workers.json.  Never part of the tests.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, launch, machine, quiet_env, scratch, write_json  # noqa: E402


def _database(admin_url: str) -> tuple[Any, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = "bench_" + uuid.uuid4().hex[:10]
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return engine, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop(engine: Any, url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


def _client(args: tuple[str, str | None, str, int, float, int, Any]) -> tuple[int, int, int]:
    """One client process: its own run, log-batch requests until the time or count runs out."""
    import requests

    base, token, exp, points, seconds, max_requests, start = args
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    api = base + "/api/2.0/mlflow/"
    run = session.post(api + "runs/create", json={"experiment_id": exp}, timeout=60).json()["run"]["info"]["run_id"]
    start.wait()
    done = errors = 0
    deadline = time.monotonic() + seconds
    while done < max_requests and time.monotonic() < deadline:
        metrics = [{"key": "loss", "value": float(p), "timestamp": 1, "step": done * points + p}
                   for p in range(points)]
        reply = session.post(api + "runs/log-batch", json={"run_id": run, "metrics": metrics}, timeout=60)
        if reply.status_code == 200:
            done += 1
        else:
            errors += 1
    return done, errors, done * points


def _stored_points(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM metrics")).scalar()
    engine.dispose()
    return int(n or 0)


def measure(kind: str, workers: int, admin_url: str, opts: argparse.Namespace) -> dict[str, Any]:
    engine, url = _database(admin_url)
    token = secrets.token_hex(8) if kind == "labtrack" else None
    port = free_port()
    with scratch(f"bench-workers-{kind}-") as workdir:
        if kind == "labtrack":
            cmd = [sys.executable, "-m", "labtrack", "server", "--backend-store-uri", url, "--host", "127.0.0.1",
                   "--port", str(port), "--token", str(token), "--workers", str(workers)]
        else:
            cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", url, "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers)]
        server = launch(kind, cmd, port, workdir, timeout=300, token=token)
        try:
            import requests

            headers = {"Authorization": f"Bearer {token}"} if token else {}
            exp = requests.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/create", headers=headers,
                                json={"name": f"bench-{uuid.uuid4().hex[:6]}"}, timeout=60).json()["experiment_id"]
            ctx = multiprocessing.get_context("spawn")
            with ctx.Manager() as manager:
                start = manager.Event()
                with ctx.Pool(opts.clients) as pool:
                    jobs = pool.map_async(_client, [(f"http://127.0.0.1:{port}", token, exp, opts.points,
                                                     opts.seconds, opts.max_requests, start)] * opts.clients)
                    time.sleep(2.0)  # every client has made its run and waits
                    t0 = time.perf_counter()
                    start.set()
                    results = jobs.get(timeout=opts.seconds + 300)
                    wall = time.perf_counter() - t0
            requests_ok = sum(r[0] for r in results)
            points = sum(r[2] for r in results)
            stored = _stored_points(url)
            return {"server": kind, "workers": workers, "clients": opts.clients, "wall_s": round(wall, 2),
                    "requests_per_s": round(requests_ok / wall, 1), "points_per_s": round(points / wall),
                    "errors": sum(r[1] for r in results), "points_acknowledged": points, "points_stored": stored}
        finally:
            server.stop()
            _drop(engine, url)
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--points", type=int, default=100, help="metric points per log-batch request")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=5000, help="per client")
    parser.add_argument("--mlflow", action="store_true", help="measure mlflow server --workers N beside it")
    opts = parser.parse_args()
    admin_url = os.environ.get("LABTRACK_TEST_POSTGRES_URL")
    if not admin_url:
        sys.exit("bench_workers: set LABTRACK_TEST_POSTGRES_URL to a PostgreSQL server (see .ci/start-postgres)")
    quiet_env()
    rows = []
    for n in opts.workers:
        for kind in ("labtrack", "mlflow") if opts.mlflow else ("labtrack",):
            row = measure(kind, n, admin_url, opts)
            rows.append(row)
            print(f"{kind:8} --workers {n}: {row['requests_per_s']:8.1f} requests/s {row['points_per_s']:9d} points/s"
                  f"  ({row['errors']} errors; {row['points_stored']}/{row['points_acknowledged']} points stored)",
                  flush=True)
    path = write_json("workers.json", {"machine": machine(), "options": vars(opts), "rows": rows})
    print(f"written to {path}")


if __name__ == "__main__":
    main()

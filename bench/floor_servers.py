"""What the least possible server costs a synchronous ``log_metric`` or a ``log_batch``: the floor
under issue 21's "≥ 90% of the replay ceiling" for those figures, measured rather than argued.

    python bench/floor_servers.py [--workload log_metric|log_batch] [--calls N] [--rounds 3]
                                  [--output NAME] [--server-cpus 1 --client-cpus 0]

The unmodified mlflow client is run against these servers, round after round (the first one
moving on each round) so that a change of load touches them all alike.  ``log_metric`` (3,000 calls by default) is
``MlflowClient.log_metric(..., synchronous=True)``, one ``runs/log-metric`` POST per call;
``log_batch`` (100 calls by default) is ``MlflowClient.log_batch`` of 1,000 points of one key,
bench_server.py's shape, one ``runs/log-batch`` POST of about 80 KB per call.  The servers:

- ``replay``: bench/replay.py in front of a labtrack server, answering from its recording.
  The ceiling, as in bench_server.py.
- ``thread``: a blocking thread-per-connection server (the replay's own shape) that stores
  the points: one SQLite transaction inserting them (``executemany``) and upserting the
  latest value, committed (WAL, ``synchronous=NORMAL``, as labtrack's store), then ``{}``.
- ``asyncio``: an asyncio server parsing HTTP with httptools (the event loop under tornado
  and labtrack's server) that answers ``{}`` and stores nothing.
- ``asyncio+sqlite``: the same, storing the point as ``thread`` does.
- ``asyncio+store``: the same, storing with labtrack's own store write (``labtrack_writer``):
  what labtrack keeps of a point (latest value with min/max, the summary pyramid that draws a
  10,000,000-point metric in 0.1 s) without the server around it.  The gap from
  ``asyncio+sqlite`` is the cost of what labtrack stores; the gap from it to ``labtrack`` is the
  server's request handling (tornado's request objects, routing, guard, arguments, access log).
- ``asyncio+sqlite-early``, ``asyncio+store-early``: the same two, answering ``{}`` first and
  storing after, on the same event-loop turn (as labtrack's early answers): what storing costs a
  client that no longer waits for it.
- ``asyncio+owed-early``: ``asyncio+store-early`` doing, before its answer, what a tracking
  server owes a point it answers before storing, the least way: the run's lifecycle read (one
  statement; MLflow's error for a deleted run) and the body appended to a journal file (one
  ``os.write``; the point survives the process).  With no token set, as ``labtrack`` here, that
  is all a server must do before the answer; the gap from it to ``labtrack`` is labtrack's own.
- ``labtrack``: ``labtrack server``.
- ``labtrack-late``: ``labtrack server`` with ``LABTRACK_EARLY_ANSWER=0``: every write answered
  after its commit, as before the early answers (server/early_answer.py).
- ``labtrack-nolane``: ``labtrack server`` with ``LABTRACK_METRIC_LANE=0``: early answers, every
  request through the tornado application (no server/metric_lane.py).

``--servers`` picks some of them (``replay`` always runs: it is the ceiling).

The minimal servers check nothing (no auth, no run, no validation) and keep no history
summaries: each is less than a tracking server must do, so a share of the ceiling they miss
is out of reach for any server of that shape on this machine.  Each row gives the wall time
per call, its share of the ceiling (the replay's wall over the row's), and the CPU per call of
the server process and of the client.  ``--server-cpus``/``--client-cpus`` put every server's
process tree and this client on CPUs of their own (bench/cpu_affinity.py), as two machines
would be.  Results: ``bench/results/<output>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import socketserver
import sqlite3
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_affinity import parse_cpus, pin_self, pin_tree  # noqa: E402

from common import (RESULTS_DIR, Server, free_port, interleaved, launch, machine, median,  # noqa: E402
                    scratch, start_floor, start_labtrack)

FLOOR_RUN = "0" * 32  # the run every minimal server's calls name
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_DDL = ("CREATE TABLE IF NOT EXISTS points (run TEXT, key TEXT, step INTEGER, ts INTEGER, value REAL,"
        " PRIMARY KEY (run, key, step, ts, value)) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS latest (run TEXT, key TEXT, step INTEGER, ts INTEGER, value REAL,"
        " PRIMARY KEY (run, key))")


def _open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    for ddl in _DDL:
        db.execute(ddl)
    return db


def _store(db: sqlite3.Connection, target: bytes, body: bytes) -> None:
    """The points of a ``runs/log-metric`` or ``runs/log-batch`` body and the latest value, in
    one committed transaction (the batch's last point stands for its latest: no comparison)."""
    if target.endswith(b"/runs/log-metric"):
        a = json.loads(body)
        run, points = a["run_id"], [a]
    elif target.endswith(b"/runs/log-batch"):
        a = json.loads(body)
        run, points = a["run_id"], a.get("metrics", [])
    else:
        return
    rows = [(run, p["key"], int(p.get("step", 0)), int(p["timestamp"]), float(p["value"])) for p in points]
    db.execute("BEGIN")
    db.executemany("INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?)", rows)
    if rows:
        db.execute("INSERT INTO latest VALUES (?, ?, ?, ?, ?) ON CONFLICT (run, key) DO UPDATE SET"
                   " step = excluded.step, ts = excluded.ts, value = excluded.value", rows[-1])
    db.execute("COMMIT")


def labtrack_writer(path: str, owed: bool = False) -> Callable[[bytes, bytes, Callable[[], None] | None], None]:
    """What ``asyncio+store`` stores with: labtrack's own write of the points (``TrackingStore.log_batch``:
    the points, the latest value with min/max, the summary pyramid), applied inline on the event loop
    as labtrack's server applies a small write when its writer is idle, without the server around it
    (no tornado request objects, routing, guard, argument parsing or access log).  The run
    ``FLOOR_RUN`` is created first; the value and step are taken as given (no validation).

    ``owed``: before ``reply()``, what a tracking server owes an early answer, done the least
    way: the run's lifecycle read (labtrack's ``run_active_now``, one statement; MLflow's error
    for a deleted run needs it) and the body appended to a journal file with one ``os.write``
    (an answered point is not lost if the process dies before its commit)."""
    from labtrack.entities import Metric
    from labtrack.store.tracking import TrackingStore

    store = TrackingStore(f"sqlite:///{path}")
    exp = store.create_experiment("floor")
    store.create_run(exp, user_id="", start_time=None, run_name="floor", tags={}, run_id=FLOOR_RUN)
    journal = os.open(f"{path}.journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if owed else -1

    def write(target: bytes, body: bytes, reply: Callable[[], None] | None = None) -> None:
        if target.endswith(b"/runs/log-metric"):
            a = json.loads(body)
            metrics = [Metric(a["key"], float(a["value"]), int(a["timestamp"]), int(a.get("step", 0)))]
        elif target.endswith(b"/runs/log-batch"):
            metrics = [Metric(p["key"], float(p["value"]), int(p["timestamp"]), int(p.get("step", 0)))
                       for p in json.loads(body).get("metrics", [])]
        else:
            if reply is not None:
                reply()
            return
        op = lambda _conn: store.log_batch(FLOOR_RUN, metrics=metrics)  # noqa: E731

        def before(conn: Any) -> None:
            if owed and not (store.run_active_now(conn, FLOOR_RUN) and os.write(journal, body + b"\n")):
                return
            if reply is not None:
                reply()

        if store.writer.apply_now_from_loop(op, before) is None:
            store.writer.run(op)
            if reply is not None:
                reply()

    return write


def serve_asyncio(port: int, db: sqlite3.Connection | None,
                  write: Callable[[bytes, bytes, Callable[[], None] | None], None] | None = None,
                  early: bool = False) -> None:
    """``early`` with ``write``: ``write`` answers (through the reply it is given) once it may."""
    import httptools

    class Conn(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.url, self.body = b"", b""

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_begin(self) -> None:
            self.url, self.body = b"", b""

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            reply = lambda: self.transport.write(_OK)  # noqa: E731
            if early and write is not None:  # answered before the store's transaction, same loop turn
                write(self.url, self.body, reply)
                return
            if early:  # answered first, stored on the same loop turn (as labtrack's early answers)
                reply()
            if db is not None:
                _store(db, self.url, self.body)
            if write is not None:
                write(self.url, self.body, None)
            if not early:
                reply()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


def serve_thread(port: int, db: sqlite3.Connection) -> None:
    class Handler(socketserver.StreamRequestHandler):
        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle(self) -> None:
            while True:
                line = self.rfile.readline(65537)
                if not line.strip():
                    return
                target, length = line.split(b" ")[1], 0
                while (h := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                _store(db, target, self.rfile.read(length) if length else b"")
                self.wfile.write(_OK)

    class Threaded(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Threaded(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


def _start_minimal(kind: str, workdir: Path) -> Server:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--db", str(workdir / "floor.db")]
    return launch(kind, cmd, port, workdir, timeout=30)


BATCH = 1000  # points a log_batch call, as bench_server.py's


def _call(workload: str, client: Any, run_id: str, key: str, i: int) -> None:
    """Call ``i`` of a workload: one point, or the ``BATCH`` points from step ``i * BATCH``."""
    if workload == "log_metric":
        client.log_metric(run_id, key, i * 0.5, step=i, synchronous=True)
        return
    from mlflow.entities import Metric

    t0 = 1_700_000_000_000 + i * BATCH
    client.log_batch(run_id, metrics=[Metric(key, (i * BATCH + j) * 0.5, t0 + j, i * BATCH + j)
                                      for j in range(BATCH)])


def _loop(workload: str, server: Server, run_id: str, calls: int, offset: int) -> dict[str, float]:
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    for i in range(20):  # the connection and the server's code paths, warm (recorded by the replay)
        _call(workload, client, run_id, "warm", offset + i)
    with server.timed():
        c0, p0, t0 = server.cpu_s(), time.process_time(), time.perf_counter()
        for i in range(calls):
            _call(workload, client, run_id, "m", offset + i)
        wall, client_cpu, cpu = time.perf_counter() - t0, time.process_time() - p0, server.cpu_s() - c0
    return {"wall_ms": 1000 * wall / calls, "server_cpu_ms": 1000 * cpu / calls,
            "client_cpu_ms": 1000 * client_cpu / calls}


MINIMAL = ("thread", "asyncio", "asyncio+sqlite", "asyncio+store", "asyncio+sqlite-early", "asyncio+store-early",
           "asyncio+owed-early")
SERVERS = ("replay", *MINIMAL, "labtrack", "labtrack-late", "labtrack-nolane")


def _start(name: str, workdir: Path) -> Server:
    if name == "replay":
        return start_floor(workdir, None)
    if name == "labtrack":
        return start_labtrack(workdir, None)
    variant = {"labtrack-late": ("LABTRACK_EARLY_ANSWER", "0"),
               "labtrack-nolane": ("LABTRACK_METRIC_LANE", "0")}.get(name)
    if variant is not None:
        os.environ[variant[0]] = variant[1]
        try:
            return start_labtrack(workdir, None)
        finally:
            del os.environ[variant[0]]
    return _start_minimal(name, workdir)


def run(workload: str, calls: int, rounds: int, names: tuple[str, ...] = SERVERS,
        server_cpus: frozenset[int] | None = None, client_cpus: frozenset[int] | None = None) -> dict[str, Any]:
    """``server_cpus``/``client_cpus``: each server (its whole process tree) and this client on
    CPUs of their own (bench/cpu_affinity.py), as a client and a server on separate machines."""
    from mlflow import MlflowClient

    load = os.getloadavg()
    servers: dict[str, Server] = {}
    with scratch("lt-floor-servers-") as tmp:
        try:
            for name in ("replay", *(n for n in names if n != "replay")):
                servers[name] = _start(name, tmp / name.replace("+", "-"))
                for proc in (servers[name], getattr(servers[name], "upstream", None)):
                    if server_cpus and proc is not None:
                        pin_tree(proc.pid, server_cpus)
            pin_self(client_cpus)
            run_ids = {}
            for name, server in servers.items():
                if name == "replay" or name.startswith("labtrack"):
                    c = MlflowClient(server.url)
                    run_ids[name] = c.create_run(c.create_experiment("floor")).info.run_id
                else:
                    run_ids[name] = FLOOR_RUN
            raw: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for r, name in interleaved(list(servers), rounds):
                raw[name].append(_loop(workload, servers[name], run_ids[name], calls, r * (calls + 20)))
        finally:
            for server in servers.values():
                server.stop()
    ceiling = median([x["wall_ms"] for x in raw["replay"]])
    rows = []
    for name, xs in raw.items():
        wall = median([x["wall_ms"] for x in xs])
        rows.append({"server": name, "wall_ms": wall, "of_ceiling": ceiling / wall,
                     "server_cpu_ms": median([x["server_cpu_ms"] for x in xs]),
                     "client_cpu_ms": median([x["client_cpu_ms"] for x in xs])})
    placement = {"server_cpus": sorted(server_cpus or ()), "client_cpus": sorted(client_cpus or ())}
    return {"benchmark": "floor_servers", "workload": workload, "calls": calls, "rounds": rounds, "load_start": load,
            **placement,
            "load_end": os.getloadavg(), "machine": machine(), "rows": rows, "raw": raw}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=["log_metric", "log_batch"], default="log_metric")
    ap.add_argument("--calls", type=int, default=None, help="calls a round (3,000 log_metric, 100 log_batch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", default=None, help="results name (floor_servers[_log_batch])")
    ap.add_argument("--servers", default=",".join(SERVERS), help=f"some of {','.join(SERVERS)}")
    ap.add_argument("--server-cpus", type=parse_cpus, default=None,
                    help="CPUs for every server's processes, e.g. 1 (taskset's list form)")
    ap.add_argument("--client-cpus", type=parse_cpus, default=None,
                    help="CPUs for this process, the mlflow client, e.g. 0")
    ap.add_argument("--serve", choices=MINIMAL, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve == "thread":
        serve_thread(args.port, _open_db(args.db))
    elif args.serve:
        early = args.serve.endswith("-early")
        kind = args.serve.removesuffix("-early")
        if kind in ("asyncio+store", "asyncio+owed"):
            serve_asyncio(args.port, None, labtrack_writer(args.db, owed=kind == "asyncio+owed"), early=early)
        else:
            serve_asyncio(args.port, _open_db(args.db) if kind == "asyncio+sqlite" else None, early=early)
    else:
        calls = args.calls or (3000 if args.workload == "log_metric" else 100)
        names = tuple(n.strip() for n in args.servers.split(",") if n.strip())
        unknown = sorted(set(names) - set(SERVERS))
        if unknown:
            ap.error(f"unknown servers: {', '.join(unknown)} (known: {', '.join(SERVERS)})")
        out = run(args.workload, calls, args.rounds, names, args.server_cpus, args.client_cpus)
        what = "sync log_metric" if args.workload == "log_metric" else f"log_batch of {BATCH:,} points"
        print(f"{what} through the mlflow client, {calls:,} calls x {args.rounds} rounds,"
              f" load {out['load_start'][0]:.1f} -> {out['load_end'][0]:.1f}"
              + (f"; servers on CPU(s) {out['server_cpus']}, client on {out['client_cpus'] or 'any'}"
                 if out["server_cpus"] else ""))
        print(f"{'server':<16}{'wall ms/call':>14}{'of ceiling':>12}{'server CPU ms':>15}{'client CPU ms':>15}")
        for r in out["rows"]:
            print(f"{r['server']:<16}{r['wall_ms']:>14.3f}{r['of_ceiling']:>11.0%}"
                  f"{r['server_cpu_ms']:>15.3f}{r['client_cpu_ms']:>15.3f}")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        name = args.output or ("floor_servers" if args.workload == "log_metric" else "floor_servers_log_batch")
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

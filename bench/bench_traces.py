"""Trace ingest: spans per second and server CPU per span, mlflow server and labtrack side by side.

The unmodified mlflow client traces the same workload to both servers: ``--traces`` traces of
``--spans`` spans each (a root, a chain of tools, every span with ~1 kB of inputs and outputs
and one with a ``--long-kb`` input), exported synchronously (MLFLOW_ENABLE_ASYNC_TRACE_LOGGING
=false), so the client's wall time covers every span's export.  Each side runs in a worker
process of its own that is ready (imports done, experiment set) before the timed part starts.
Against labtrack the same spans also go through ``lt.trace`` (one request per trace, queued on
lt's sender), a row MLflow has no counterpart for.  Then both servers answer 20 searches and
20 ``get_trace`` calls of a trace with long inputs.

    python bench/bench_traces.py [--traces 100] [--spans 10] [--long-kb 64] [--only labtrack]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    QUIET_ENV,
    Row,
    Server,
    machine,
    quiet_env,
    scratch,
    start_labtrack,
    start_mlflow,
    table,
    write_json,
)

WORKER = """
import json, os, sys, time
traces, spans, long_kb, client = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
payload = {"text": "x" * 900, "n": 1}
long_text = "y" * (long_kb * 1024)
if client == "mlflow":
    import mlflow
    mlflow.set_experiment("bench-traces")
    trace, span = mlflow.trace, mlflow.start_span
    flush = lambda: mlflow.flush_trace_async_logging()
    last = mlflow.get_last_active_trace_id
else:
    import labtrack as lt
    lt.set_experiment("bench-traces")
    trace, span = lt.trace, lt.start_span
    flush = lt.flush
    last = lt.get_last_active_trace_id

def one(i):
    with span("root", span_type="CHAIN") as root:
        root.set_inputs({"question": long_text if i == 0 else payload})
        for k in range(spans - 1):
            with span(f"tool-{k}", span_type="TOOL") as s:
                s.set_inputs(payload)
                s.set_outputs(payload)
        root.set_outputs(payload)

one(0)  # warm-up: connection, experiment, first export
flush()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
for i in range(1, traces + 1):
    one(i)
flush()
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "first": None}), flush=True)
"""


def run_worker(server: Server, client: str, traces: int, spans: int, long_kb: int) -> dict[str, Any]:
    env = {**os.environ, **QUIET_ENV, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
           "MLFLOW_TRACKING_URI": server.url, "LABTRACK_TRACKING_URI": server.url,
           "LABTRACK_ASYNC_LOGGING": "true"}  # lt's sender queues each trace; lt.flush() waits
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    if server.token:
        env["MLFLOW_TRACKING_TOKEN"] = env["LABTRACK_TRACKING_TOKEN"] = server.token
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(traces), str(spans), str(long_kb), client],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"{client} worker on {server.name}: {line}{proc.communicate()[1][-3000:]}")
    time.sleep(0.5)  # let the server settle after the warm-up
    cpu0 = server.cpu_s()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=1800)
    cpu = server.cpu_s() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{client} worker on {server.name} failed: {err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    n = traces * spans
    return {"spans": n, "wall_s": result["wall_s"], "spans_per_s": n / result["wall_s"],
            "server_cpu_s": cpu, "cpu_ms_per_span": 1000 * cpu / n}


def reads(server: Server, n: int = 20) -> dict[str, float]:
    """Median ms of a search (100 infos) and of get_trace on the trace with the long input."""
    import requests

    s = requests.Session()
    if server.token:
        s.headers["Authorization"] = f"Bearer {server.token}"
    exp = s.get(server.url + "/api/2.0/mlflow/experiments/get-by-name",
                params={"experiment_name": "bench-traces"}, timeout=60).json()["experiment"]["experiment_id"]
    body = {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}],
            "max_results": 100, "filter": "trace.status = 'OK'"}
    found = s.post(server.url + "/api/3.0/mlflow/traces/search", json=body, timeout=60).json()["traces"]
    oldest = s.post(server.url + "/api/3.0/mlflow/traces/search", timeout=60,
                    json={**body, "order_by": ["timestamp_ms ASC"], "max_results": 1}).json()["traces"][0]["trace_id"]
    search_ms, get_ms = [], []
    cpu0 = server.cpu_s()
    for _ in range(n):
        t0 = time.perf_counter()
        r = s.post(server.url + "/api/3.0/mlflow/traces/search", json=body, timeout=60)
        search_ms.append(1000 * (time.perf_counter() - t0))
        assert r.status_code == 200 and len(r.json()["traces"]) == len(found)
        t0 = time.perf_counter()
        r = s.get(server.url + "/api/3.0/mlflow/traces/get", params={"trace_id": oldest}, timeout=60)
        get_ms.append(1000 * (time.perf_counter() - t0))
        assert r.status_code == 200, r.text[:300]
    cpu = server.cpu_s() - cpu0
    search_ms.sort()
    get_ms.sort()
    return {"search_ms": search_ms[n // 2], "get_trace_ms": get_ms[n // 2], "cpu_ms_per_read": 1000 * cpu / (2 * n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=100)
    ap.add_argument("--spans", type=int, default=10)
    ap.add_argument("--long-kb", type=int, default=64)
    ap.add_argument("--only", choices=["labtrack", "mlflow"])
    args = ap.parse_args()
    quiet_env()
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    with scratch("bench-traces-") as tmp:
        servers: dict[str, Server] = {}
        try:
            if args.only != "mlflow":
                servers["labtrack"] = start_labtrack(tmp / "labtrack", secrets.token_hex(8))
            if args.only != "labtrack":
                servers["mlflow"] = start_mlflow(tmp / "mlflow")
            for name, server in servers.items():
                print(f"{name}: mlflow client, {args.traces} traces x {args.spans} spans ...", flush=True)
                results[f"{name}_mlflow_client"] = run_worker(server, "mlflow", args.traces, args.spans, args.long_kb)
                results[f"{name}_reads"] = reads(server)
            if "labtrack" in servers:
                print("labtrack: lt.trace ...", flush=True)
                results["labtrack_lt"] = run_worker(servers["labtrack"], "lt", args.traces, args.spans, args.long_kb)
            for name, server in servers.items():
                results[f"{name}_rss_mb"] = server.rss_mb()
        finally:
            for server in servers.values():
                server.stop()

    def get(side: str, key: str, part: str = "mlflow_client") -> float | None:
        r = results.get(f"{side}_{part}")
        return None if r is None else r[key]

    rows = [
        Row("span ingest, mlflow client", "spans/s", get("mlflow", "spans_per_s"), get("labtrack", "spans_per_s"),
            higher_is_better=True),
        Row("server CPU per span, mlflow client", "ms", get("mlflow", "cpu_ms_per_span"),
            get("labtrack", "cpu_ms_per_span")),
        Row("span ingest, lt.trace", "spans/s", None, get("labtrack", "spans_per_s", "lt"), higher_is_better=True,
            note="labtrack's own client: one request per trace, queued on lt's sender; MLflow has no such path"),
        Row("server CPU per span, lt.trace", "ms", None, get("labtrack", "cpu_ms_per_span", "lt")),
        Row("search_traces (100 infos)", "ms", get("mlflow", "search_ms", "reads"), get("labtrack", "search_ms", "reads")),
        Row(f"get_trace with a {args.long_kb} kB input", "ms", get("mlflow", "get_trace_ms", "reads"),
            get("labtrack", "get_trace_ms", "reads")),
        Row("server CPU per read", "ms", get("mlflow", "cpu_ms_per_read", "reads"),
            get("labtrack", "cpu_ms_per_read", "reads")),
        Row("server RSS after the workload", "MB", results.get("mlflow_rss_mb"), results.get("labtrack_rss_mb")),
    ]
    results["rows"] = [r.to_json() for r in rows]
    print()
    print(table(rows))
    print(f"\nwritten to {write_json('bench_traces.json', results)}")


if __name__ == "__main__":
    main()

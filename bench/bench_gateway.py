"""The AI gateway's added latency: calls through labtrack's gateway versus straight to the model server.

    python bench/bench_gateway.py [--calls 200] [--max-tokens 1] [--no-mlflow]

A real OpenAI-compatible model server (``transformers serve`` over the tests'
tiny Llama, tests/llm/tiny_model.py) answers every call.  The same chat request
goes, interleaved call by call so that load drift weighs on all alike:

1. straight to the model server's ``/v1/chat/completions``;
2. through ``labtrack server --gateway-config`` (``/v1/chat/completions``, which
   also stores a trace per call);
3. through ``labtrack gateway`` (standalone: no database, no traces);
4. through MLflow's own gateway (``mlflow gateway start``), unless ``--no-mlflow``.

It prints p50 and p99 of the client's wall time for each, the added latency over
the direct call (each percentile minus the direct one) and the server CPU per call
of each gateway process.  It never asserts on timing; results go to
bench/results/gateway.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.common import free_port, labtrack_command, launch, machine, quiet_env, tree_cpu_s, write_json  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200, help="timed calls per target (default 200)")
    ap.add_argument("--max-tokens", type=int, default=1, help="tokens generated per call (default 1)")
    ap.add_argument("--no-mlflow", action="store_true", help="skip MLflow's gateway")
    args = ap.parse_args()
    calls = max(10, min(args.calls, 5000))
    quiet_env()
    import requests

    from tests.llm.conftest import start_llm_server, stop_llm_server

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    key = work / "key"
    key.write_text("sk-bench-not-a-real-key")
    key.chmod(0o600)
    print("starting the model server (transformers serve, tiny Llama)...", flush=True)
    llm = start_llm_server(work / "llm")
    servers = []
    try:
        config = work / "gateway.yaml"
        config.write_text(
            "endpoints:\n  - name: chat\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n"
            f"      name: {llm.model}\n      config:\n        openai_api_base: {llm.url}\n"
            f"        openai_api_key: {key}\n")
        port = free_port()
        lt_server = launch("labtrack server", labtrack_command(work / "lt", port, None)
                           + ["--gateway-config", str(config)], port, work / "lt", timeout=120)
        servers.append(lt_server)
        port = free_port()
        lt_alone = launch("labtrack gateway", [sys.executable, "-m", "labtrack", "gateway", "--config", str(config),
                                               "--port", str(port), "--no-token"], port, work / "ltg", timeout=120)
        servers.append(lt_alone)
        ml_gateway = None
        if not args.no_mlflow:
            ml_config = work / "mlflow-gateway.yaml"
            os.environ["BENCH_GATEWAY_KEY"] = "sk-bench-not-a-real-key"
            ml_config.write_text(
                "endpoints:\n  - name: chat\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n"
                f"      name: {llm.model}\n      config:\n        openai_api_base: {llm.url}\n"
                "        openai_api_key: $BENCH_GATEWAY_KEY\n")
            port = free_port()
            try:
                ml_gateway = launch("mlflow gateway", [sys.executable, "-m", "mlflow", "gateway", "start",
                                                       "--config-path", str(ml_config), "--host", "127.0.0.1",
                                                       "--port", str(port), "--workers", "1"],
                                    port, work / "mlg", timeout=300)
                servers.append(ml_gateway)
            except RuntimeError as e:
                print(f"MLflow's gateway did not start; left out: {str(e).splitlines()[0]}")
        body = {"messages": [{"role": "user", "content": "hello world"}], "max_tokens": args.max_tokens,
                "temperature": 0.7}
        targets: dict[str, tuple[str, dict[str, Any], Any]] = {
            "direct": (llm.url + "/chat/completions", {**body, "model": llm.model}, None),
            "labtrack server": (lt_server.url + "/v1/chat/completions", {**body, "model": "chat"}, lt_server),
            "labtrack gateway": (lt_alone.url + "/v1/chat/completions", {**body, "model": "chat"}, lt_alone),
        }
        if ml_gateway is not None:
            targets["mlflow gateway"] = (ml_gateway.url + "/gateway/chat/invocations", body, ml_gateway)
        sessions = {name: requests.Session() for name in targets}
        times: dict[str, list[float]] = {name: [] for name in targets}

        def one(name: str) -> float:
            url, payload, _ = targets[name]
            t0 = time.perf_counter()
            r = sessions[name].post(url, json=payload, timeout=120)
            elapsed = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"{name}: HTTP {r.status_code}: {r.text[:300]}")
            return elapsed

        for _ in range(10):  # warm-up: connections, the model's first pass, the gateways' imports
            for name in targets:
                one(name)
        cpu0 = {name: tree_cpu_s(t[2].pid) for name, t in targets.items() if t[2] is not None}
        deadline = time.monotonic() + 1800
        for i in range(calls):
            for name in targets:
                times[name].append(one(name))
            if time.monotonic() > deadline:
                print(f"stopped after {i + 1} rounds (30 min)")
                break
        cpu = {name: (tree_cpu_s(t[2].pid) - cpu0[name]) / len(times[name]) * 1000
               for name, t in targets.items() if t[2] is not None}
    finally:
        for s in servers:
            s.stop()
        stop_llm_server(llm)

    direct = times["direct"]
    rows = []
    print(f"\n{len(direct)} calls per target, max_tokens={args.max_tokens}, interleaved; wall ms at the client")
    print(f"{'target':<18}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'+p50 ms':>9}{'+p99 ms':>9}{'CPU ms/call':>13}")
    for name, xs in times.items():
        ms = [x * 1000 for x in xs]
        row = {"target": name, "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "mean_ms": statistics.fmean(ms),
               "added_p50_ms": pct(ms, 50) - pct([x * 1000 for x in direct], 50),
               "added_p99_ms": pct(ms, 99) - pct([x * 1000 for x in direct], 99),
               "server_cpu_ms_per_call": cpu.get(name)}
        rows.append(row)
        cpu_text = f"{row['server_cpu_ms_per_call']:.2f}" if row["server_cpu_ms_per_call"] is not None else "-"
        print(f"{name:<18}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['mean_ms']:>9.2f}"
              f"{row['added_p50_ms']:>9.2f}{row['added_p99_ms']:>9.2f}{cpu_text:>13}")
    path = write_json("gateway.json", {"machine": machine(), "calls": len(direct), "max_tokens": args.max_tokens,
                                       "rows": rows})
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()

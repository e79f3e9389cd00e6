"""Issue 21, "ten times the scale": every scale figure beside its target and its anchor, in one table.

    python bench/bench_scale.py [--quick] [--only search,ingest,...] [--mlflow-cap-s S] [--no-mlflow]

Runs the ``figures(quick)`` of each ``bench/scale_<part>.py`` that exists (ingest,
search, ui, memory), in that order, and prints ONE table: figure | target | anchor |
measured | ratio, where ratio is how many times better labtrack is than MLflow measured
in the same run (blank where MLflow cannot run the workload, or the figure has no
MLflow twin).  Datasets come from ``scale_data.py``, built once and cached by a content
hash.  Results: ``bench/results/scale.json`` (the rows, each part's raw record where it
keeps one, the machine and its load).  Timings never gate tests.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
for p in (BENCH_DIR.parent, BENCH_DIR):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench.common import machine, quiet_env, write_json  # noqa: E402
from cpu_affinity import parse_cpus  # noqa: E402

PARTS = ("ingest", "search", "ui", "memory")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["figure", "target", "anchor", "measured", "ratio"]
    body = []
    for r in rows:
        measured = _cell(r.get("measured"))
        if measured and r.get("unit"):
            measured += f" {r['unit']}"
        ratio = r.get("ratio")
        body.append([str(r.get("figure", "")), str(r.get("target", "")), _cell(r.get("anchor")), measured,
                     "" if ratio is None else f"{ratio:,.1f}×"])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return " | ".join(c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head), "-+-".join("-" * w for w in widths)] + [line(b) for b in body]
    notes = [f"  [{i + 1}] {r['figure']}: {r['note']}" for i, r in enumerate(rows) if r.get("note")]
    return "\n".join(out + ([""] + notes if notes else []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Issue 21's scale figures, labtrack beside MLflow.")
    ap.add_argument("--quick", action="store_true", help="small datasets: a smoke run (targets assume the full size)")
    ap.add_argument("--only", default="", help=f"comma-separated parts of {', '.join(PARTS)}")
    ap.add_argument("--mlflow-cap-s", type=float, default=None,
                    help="stop each long MLflow workload after this many seconds (default 900; --quick 120)")
    ap.add_argument("--no-mlflow", action="store_true", help="labtrack only (parts that support it)")
    ap.add_argument("--server-cpus", type=parse_cpus, default=None,
                    help="ingest's spool array: the server's CPUs, e.g. 0 (bench/spool_array.py)")
    ap.add_argument("--task-cpus", type=parse_cpus, default=None,
                    help="ingest's spool array: the tasks' and HTTP writers' CPUs, e.g. 1")
    a = ap.parse_args(argv)
    quiet_env()
    only = [p.strip() for p in a.only.split(",") if p.strip()] or list(PARTS)
    unknown = [p for p in only if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    record: dict[str, Any] = {"machine": machine(), "quick": a.quick, "parts": {}}
    rows: list[dict[str, Any]] = []
    for part in only:
        if not (BENCH_DIR / f"scale_{part}.py").exists():
            print(f"[bench_scale] {part}: bench/scale_{part}.py is not there; skipped", file=sys.stderr)
            continue
        module = importlib.import_module(f"scale_{part}")
        params = inspect.signature(module.figures).parameters
        kwargs: dict[str, Any] = {}
        if "mlflow_cap_s" in params:
            kwargs["mlflow_cap_s"] = a.mlflow_cap_s
        if "mlflow" in params:
            kwargs["mlflow"] = not a.no_mlflow
        if "server_cpus" in params:
            kwargs.update(server_cpus=a.server_cpus, task_cpus=a.task_cpus)
        print(f"[bench_scale] {part} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            got = module.figures(a.quick, **kwargs)
        except Exception:  # noqa: BLE001 - one part failing must not lose the others' figures
            err = traceback.format_exc()
            print(f"[bench_scale] {part} failed:\n{err}", file=sys.stderr)
            record["parts"][part] = {"error": err}
            rows.append({"figure": f"{part}: failed (see scale.json)", "target": "", "anchor": "", "measured": None,
                         "unit": "", "ratio": None, "note": err.strip().splitlines()[-1]})
            continue
        rows += got
        record["parts"][part] = {"wall_s": round(time.perf_counter() - t0, 1), "rows": got,
                                 "raw": getattr(module, "LAST_RECORD", None)}
    record["rows"] = rows
    record["load_avg_at_end"] = list(os.getloadavg())
    print(table(rows))
    print(f"\nload average at start {record['machine']['load_avg_at_start']}, at end {record['load_avg_at_end']}")
    print(f"wrote {write_json('scale.json', record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

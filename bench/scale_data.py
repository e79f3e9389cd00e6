"""Datasets for the scale benchmarks (issue 21), built once and cached by content hash.

Each builder writes a labtrack database through labtrack's own store (bulk inserts in the
server's code paths, never over HTTP) into ``bench/results/cache/<name>-<hash>/mlruns.db``.
The hash covers the builder's arguments and the source of the code that produces the rows,
so changing either builds afresh; an unchanged dataset is reused across benchmark runs.
A build writes into a temporary folder and renames it when complete: an interrupted build
leaves nothing that looks cached.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / "results" / "cache"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))


def cached_dataset(name: str, args: dict[str, Any], code: list[Callable[..., Any]],
                   build: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """The folder holding ``name``'s database for ``args`` and what its build returned.

    ``build(folder)`` fills an empty folder and returns facts about the data (ids, counts) as a
    JSON-able dict; ``code`` lists the functions whose source determines the rows.
    """
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    for fn in code:
        digest.update(inspect.getsource(fn).encode())
    folder = CACHE_DIR / f"{name}-{digest.hexdigest()[:16]}"
    facts = folder / "facts.json"
    if facts.exists():
        return folder, json.loads(facts.read_text())
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t = time.perf_counter()
    out = build(tmp)
    out["build_s"] = round(time.perf_counter() - t, 1)
    (tmp / "facts.json").write_text(json.dumps(out, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder, out


# -- one metric of 10,000,000 points ---------------------------------------------------

def _long_metric_rows(folder: Path, n_points: int, chunk: int = 250_000) -> dict[str, Any]:
    """One experiment with one run holding metric ``long`` of ``n_points`` points (steps 0..n-1),
    written by ``store.metrics.insert_series``: the points, the latest value and the min/max
    pyramid of ``store.downsample``, in the same transactions as the server's bulk path."""
    from bench_ui import _long_value

    from labtrack.entities import MetricSeries
    from labtrack.store.metrics import insert_series
    from labtrack.store.tracking import TrackingStore

    store = TrackingStore(f"sqlite:///{folder / 'mlruns.db'}")
    try:
        exp = store.create_experiment("scale-long-metric")
        t0 = 1_700_000_000_000
        run_id = store.create_run(exp, user_id="bench", start_time=t0, run_name="long-metric").info.run_id
        for a in range(0, n_points, chunk):
            steps = list(range(a, min(n_points, a + chunk)))
            series = MetricSeries("long", steps, [t0 + s for s in steps], [_long_value(s) for s in steps])
            store.write(lambda conn, series=series: insert_series(conn, run_id, [series]))
        store.update_run(run_id, status="FINISHED", end_time=t0 + n_points)
    finally:
        store.close()
    return {"experiment_id": str(exp), "run_id": run_id, "points": n_points, "key": "long"}


def long_metric_dataset(n_points: int = 10_000_000) -> tuple[Path, dict[str, Any]]:
    """A database with one run whose metric ``long`` has ``n_points`` points (cached).

    Returns (folder holding ``mlruns.db``, {"experiment_id", "run_id", "points", "key", "build_s"}).
    About 0.7 GB and 3-6 minutes on 2 busy cores for 10,000,000 points.
    """
    from bench_ui import _long_value

    return cached_dataset("long-metric", {"points": n_points}, [_long_metric_rows, _long_value],
                          lambda folder: _long_metric_rows(folder, n_points))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    print(long_metric_dataset(n))

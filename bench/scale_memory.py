"""Issue 21, memory under load: the server's RSS does not grow with a history's length.

    python bench/scale_memory.py [--quick]

A metric of ``small`` points and one of ``big`` points (100,000 and 1,000,000; ``--quick``:
100,000 and 400,000), each in its own database built once through labtrack's store
(``scale_data.long_metric_dataset``).  ``small`` is at least one page of every reader
below, so the two differ in the history's length only, not in the size of a request.  For
every way of reading a whole history, a fresh ``labtrack server`` on a copy of each database
serves it once while a thread samples the server's RSS (psutil, every 10 ms); the figure is
the peak over the read, the anchor the same peak for the short history:

* the unmodified mlflow client's ``MlflowClient.get_metric_history`` (pages of 25,000);
* ``labtrack.Client.get_metric_history`` (``metrics/history-columns``, pages of 100,000);
* one ``metrics/get-history`` request asking for every point (``max_results`` = the length).

Logging: a fresh server takes ``big`` points of one metric through ``runs/log-series``
(100,000 points a request, what labtrack's background sender sends); the peak RSS while the
history grows from 300,000 to ``big`` points is compared with the peak over its first 300,000
(the first requests settle the allocator: see ``LOG_SETTLE``).

The target: the long history's peak is within 10% of the short one's (ratio = measured /
anchor ≤ 1.10): nothing on the server side grows with history length except disk.
``figures(quick)`` returns the rows (figure, target, anchor, measured, unit, ratio, note) for
bench/bench_scale.py; run alone it prints them and writes ``bench/results/scale_memory.json``.
Timings never gate tests.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for p in (str(ROOT / "src"), str(BENCH_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

from common import Server, machine, quiet_env, scratch, start_labtrack, tree_rss_mb, write_json  # noqa: E402

SIZES = {False: (100_000, 1_000_000), True: (100_000, 400_000)}  # quick -> (small, big)
TARGET = 1.10
TOKEN_VARS = ("MLFLOW_TRACKING_TOKEN", "LABTRACK_TRACKING_TOKEN")
SERIES_PAGE = 100_000  # points per runs/log-series request (labtrack's sender sends up to this many)
# The first few 100,000-point requests settle the allocator's arenas (peaks of 87, 97, 105 MB
# measured, then 105 MB flat to 2,000,000 points): the anchor is the peak over these.
LOG_SETTLE = 300_000


class PeakRss:
    """Samples a server's RSS (MB) in a thread while the ``with`` block runs; ``peak`` after."""

    def __init__(self, server: Server, every_s: float = 0.01) -> None:
        self.server, self.every_s = server, every_s
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.server.pid))
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self.peak = tree_rss_mb(self.server.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mb(self.server.pid))


def _session(server: Server) -> Any:
    import requests

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {server.token}"
    return s


def _read_mlflow(server: Server, run_id: str, key: str) -> int:
    from mlflow import MlflowClient

    return len(MlflowClient(server.url).get_metric_history(run_id, key))


def _read_labtrack(server: Server, run_id: str, key: str) -> int:
    import labtrack

    return len(labtrack.Client(server.url).get_metric_history(run_id, key))


def _read_one_request(server: Server, run_id: str, key: str, points: int) -> int:
    r = _session(server).get(server.url + "/api/2.0/mlflow/metrics/get-history", timeout=600,
                             params={"run_id": run_id, "metric_key": key, "max_results": points})
    r.raise_for_status()
    return len(r.json().get("metrics", []))


def _serve(work: Path, name: str, db: Path | None) -> Server:
    """A fresh server in ``work/name``, on a copy of ``db`` when given."""
    from scale_data import fresh_copy

    folder = work / name
    if db is not None:
        fresh_copy(db.parent, db.name, folder).rename(folder / "mlruns.db")
    return start_labtrack(folder, os.environ["MLFLOW_TRACKING_TOKEN"])


def _settled_rss(server: Server, quiet_s: float = 1.0) -> float:
    time.sleep(quiet_s)
    return tree_rss_mb(server.pid)


def _reads(work: Path, sizes: tuple[int, int]) -> dict[str, dict[int, dict[str, float]]]:
    from scale_data import long_metric_dataset

    readers: dict[str, Callable[[Server, str, str, int], int]] = {
        "mlflow client (pages of 25,000)": lambda sv, r, k, n: _read_mlflow(sv, r, k),
        "labtrack.Client (history-columns, pages of 100,000)": lambda sv, r, k, n: _read_labtrack(sv, r, k),
        "one get-history request for every point": _read_one_request,
    }
    out: dict[str, dict[int, dict[str, float]]] = {name: {} for name in readers}
    for n in sizes:
        folder, facts = long_metric_dataset(n)
        for i, (name, read) in enumerate(readers.items()):
            server = _serve(work, f"read-{n}-{i}", folder / "mlruns.db")
            try:
                before = _settled_rss(server)
                t0 = time.perf_counter()
                with PeakRss(server) as peak:
                    got = read(server, facts["run_id"], facts["key"], n)
                wall = time.perf_counter() - t0
                if got != n:
                    raise RuntimeError(f"{name}: read {got} of {n} points")
                out[name][n] = {"before_mb": before, "peak_mb": peak.peak, "after_mb": _settled_rss(server),
                                "wall_s": wall}
            finally:
                server.stop()
    return out


def _log(work: Path, big: int) -> dict[str, dict[str, float]]:
    """One server takes ``big`` points; the peak RSS over the first ``LOG_SETTLE`` and over the rest."""
    from labtrack import columns

    server = _serve(work, "log", None)
    try:
        s = _session(server)
        api = server.url + "/api/2.0/"
        exp = s.post(api + "mlflow/experiments/create", json={"name": "memory"}).json()["experiment_id"]
        run_id = s.post(api + "mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
        before = _settled_rss(server)
        out: dict[str, dict[str, float]] = {}
        t0 = time.perf_counter()
        for part, (start, end) in (("settle", (0, LOG_SETTLE)), ("rest", (LOG_SETTLE, big))):
            with PeakRss(server) as peak:
                for a in range(start, end, SERIES_PAGE):
                    steps = list(range(a, min(end, a + SERIES_PAGE)))
                    series = {"key": "long", "steps": columns.pack(columns.STEP, steps),
                              "timestamps": columns.pack(columns.STEP, [1_700_000_000_000 + x for x in steps]),
                              "values": columns.pack(columns.VALUE, [math.sin(x / 500) for x in steps])}
                    s.post(api + "labtrack/runs/log-series", json={"run_id": run_id, "series": [series]},
                           timeout=600).raise_for_status()
            out[part] = {"before_mb": before, "peak_mb": peak.peak, "after_mb": tree_rss_mb(server.pid),
                         "wall_s": time.perf_counter() - t0}
        return out
    finally:
        server.stop()


def _row(figure: str, anchor_what: str, lo: dict[str, float], hi: dict[str, float], note: str) -> dict[str, Any]:
    ratio = hi["peak_mb"] / lo["peak_mb"]
    return {"figure": figure, "target": f"≤ {TARGET:.2f}× the peak {anchor_what} {'✓' if ratio <= TARGET else '✗'}",
            "anchor": round(lo["peak_mb"], 1), "measured": round(hi["peak_mb"], 1), "unit": "MB peak RSS",
            "ratio": round(ratio, 3), "note": note + f"; RSS before {lo['before_mb']:.0f} / {hi['before_mb']:.0f} MB, "
                                                     f"after {lo['after_mb']:.0f} / {hi['after_mb']:.0f} MB"}


def figures(quick: bool) -> list[dict[str, Any]]:
    """One row per way of reading or writing a history: the long one's peak RSS against the short one's."""
    quiet_env()
    # One token for every server: the mlflow client sends it from MLFLOW_TRACKING_TOKEN, lt too.
    # Put back afterwards: bench_scale.py runs other figures in this process.
    with mock.patch.dict(os.environ, dict.fromkeys(TOKEN_VARS, secrets.token_hex(16))):
        return _figures(quick)


def _figures(quick: bool) -> list[dict[str, Any]]:
    small, big = SIZES[quick]
    rows = []
    with scratch("scale-memory-") as work:
        for name, runs in _reads(work, (small, big)).items():
            rows.append(_row(f"server RSS reading {big:,} points, {name}", f"reading {small:,}", runs[small],
                             runs[big], f"read in {runs[big]['wall_s']:.1f} s"))
        logged = _log(work, big)
        rows.append(_row(f"server RSS logging points {LOG_SETTLE:,} to {big:,} of one metric "
                         f"(runs/log-series, {SERIES_PAGE:,} a request)", f"logging its first {LOG_SETTLE:,}",
                         logged["settle"], logged["rest"], f"logged in {logged['rest']['wall_s']:.1f} s"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{SIZES[True][1]:,} points instead of {SIZES[False][1]:,}")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rows = figures(args.quick)
    for r in rows:
        print(f"{r['figure']}: {r['measured']} MB vs {r['anchor']} MB ({r['ratio']:.2f}×) {r['target']}\n    {r['note']}")
    path = write_json("scale_memory.json", {"machine": machine(), "load_at_start": load, "quick": args.quick,
                                            "rows": rows})
    print(f"\nwritten to {path} (load average at the start: {load:.1f})")


if __name__ == "__main__":
    main()

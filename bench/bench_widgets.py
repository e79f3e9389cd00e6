"""Notebook widgets (issue 7): how fast a RunTable appears, and what LivePlot costs a training loop.

1. A ``RunTable`` over an experiment of 5,000 runs (params, metrics, tags), from the
   constructor to the table's HTML being ready; target <= 2 s.  Also: a 1,000-row
   page, and a sort by duration (which the table does itself, over every run).
2. A training loop that does ~10 ms of work and logs a metric each step, with and
   without ``LivePlot.update`` each step (runs interleaved, median of several);
   target: LivePlot adds <= 5 %.

Figures are printed and written to bench/results/widgets.json; nothing gates on them.
Run: ``python bench/bench_widgets.py [--runs 5000] [--steps 1500]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import machine, scratch, start_labtrack, write_json  # noqa: E402

import labtrack as lt  # noqa: E402

TABLE_TARGET_S = 2.0
LIVEPLOT_TARGET = 0.05


def seed_runs(client: lt.Client, experiment_id: str, n: int) -> None:
    """``n`` finished runs with 4 params, 3 metrics and a tag, as a sweep would leave them."""
    now = int(time.time() * 1000) - n * 1000
    for i in range(n):
        run = client.create_run(experiment_id, start_time=now + i * 1000, run_name=f"sweep-{i}")
        run_id = run.info.run_id
        client.log_batch(run_id, metrics=[
            lt.Metric("loss", 1 / (1 + i % 97), now + i * 1000, 10),
            lt.Metric("val_loss", 1.1 / (1 + i % 89), now + i * 1000, 10),
            lt.Metric("accuracy", (i % 101) / 100, now + i * 1000, 10)],
            params={"lr": 10 ** -(1 + i % 4), "batch": 32 * (1 + i % 3), "optimizer": "adam",
                    "seed": i}, tags={"sweep": "bench"}, synchronous=False)
        client.set_terminated(run_id, end_time=now + i * 1000 + 500 + i % 700)
    client.flush()


def time_table(experiment_id: str, client: lt.Client, repeats: int, **kw: object) -> float:
    from labtrack.widgets import RunTable

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        table = RunTable(experiment=experiment_id, client=client, live=False, **kw)
        assert table.table_html and table.runs
        times.append(time.perf_counter() - t0)
        table.close()
    return statistics.median(times)


def work(ms: float) -> float:
    """About ``ms`` of CPU work in this thread (a stand-in for a training step)."""
    end = time.perf_counter() + ms / 1000
    x = 0.0
    while time.perf_counter() < end:
        for k in range(200):
            x += k * 1e-9
    return x


def training_loop(steps: int, plot: object | None) -> float:
    t0 = time.perf_counter()
    with lt.start_run(run_name="liveplot-bench"):
        for step in range(steps):
            work(10)
            loss = 1 / (step + 1)
            lt.log_metric("loss", loss, step=step)
            if plot is not None:
                plot.update(step=step, loss=loss, val_loss=loss * 1.1)  # type: ignore[attr-defined]
        if plot is not None:
            plot.finish()  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=1500)  # ~15 s: a short training loop
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, object] = {"machine": machine(), "runs": args.runs, "steps": args.steps}
    with scratch("labtrack-bench-widgets-") as workdir:
        server = start_labtrack(workdir, token="bench-widgets")
        try:
            os.environ["LABTRACK_TRACKING_TOKEN"] = "bench-widgets"
            lt.set_tracking_uri(server.url)
            client = lt.Client(server.url)
            experiment_id = client.create_experiment("widgets-bench")
            t0 = time.perf_counter()
            seed_runs(client, experiment_id, args.runs)
            print(f"seeded {args.runs} runs in {time.perf_counter() - t0:.1f} s")

            from labtrack.widgets import RunTable  # noqa: F401 - the import is not the table's cost

            first = time_table(experiment_id, client, 1)
            page = time_table(experiment_id, client, args.repeats)
            big = time_table(experiment_id, client, args.repeats, page_size=1000)
            by_duration = time_table(experiment_id, client, args.repeats, order_by=["duration DESC"])
            results["table"] = {"first_s": first, "page50_s": page, "page1000_s": big,
                                "sorted_by_duration_s": by_duration}
            print(f"\nRunTable over {args.runs} runs (constructor -> table HTML ready), target <= "
                  f"{TABLE_TARGET_S:.0f} s")
            print(f"  first table in this process      {first:7.3f} s")
            print(f"  page of 50 (default)             {page:7.3f} s   "
                  f"{'OK' if page <= TABLE_TARGET_S else 'OVER'}")
            print(f"  page of 1000                     {big:7.3f} s   "
                  f"{'OK' if big <= TABLE_TARGET_S else 'OVER'}")
            print(f"  sorted by duration (all runs)    {by_duration:7.3f} s   "
                  f"{'OK' if by_duration <= TABLE_TARGET_S else 'OVER'}")

            from labtrack.widgets import LivePlot

            lt.set_experiment("liveplot-bench")
            LivePlot("loss").draw()  # matplotlib's one-off import and font load, outside the loops
            without: list[float] = []
            with_plot: list[float] = []
            redraws = []
            for _ in range(args.repeats):
                without.append(training_loop(args.steps, None))
                plot = LivePlot("loss", "val_loss")
                with_plot.append(training_loop(args.steps, plot))
                redraws.append(plot.redraws)
            base, live = statistics.median(without), statistics.median(with_plot)
            overhead = live / base - 1
            results["liveplot"] = {"without_s": without, "with_s": with_plot, "overhead": overhead,
                                   "redraws": redraws}
            print(f"\nTraining loop, {args.steps} steps of ~10 ms, lt.log_metric each step "
                  f"(median of {args.repeats})")
            print(f"  without LivePlot                 {base:7.3f} s")
            print(f"  with LivePlot.update each step   {live:7.3f} s   ({statistics.median(redraws):.0f} "
                  "redraws)")
            print(f"  overhead                         {overhead * 100:6.2f} %   target <= "
                  f"{LIVEPLOT_TARGET * 100:.0f} %   {'OK' if overhead <= LIVEPLOT_TARGET else 'OVER'}")
        finally:
            lt.flush()
            server.stop()
    print(f"\nwritten to {write_json('widgets.json', results)}")


if __name__ == "__main__":
    main()

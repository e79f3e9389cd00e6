"""Downsampled metric series for charts (labtrack's ``metrics/history-downsampled`` endpoint).

A chart needs a few hundred points per line, not a million: the server keeps
each bucket's minimum and maximum, so spikes survive.  Widgets call this and
never pull a whole history (DESIGN decision 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labtrack.client.transport import LABTRACK_API
from labtrack.entities import Metric
from labtrack.errors import LabtrackError

DEFAULT_MAX_POINTS = 1000


@dataclass
class Series:
    """One metric of one run, as the chart draws it."""

    run_id: str
    key: str
    points: list[Metric]
    total: int  # points the run really has (a lower bound when not total_exact)
    downsampled: bool
    total_exact: bool = True  # the server stops counting a window at 100,000 points

    def total_text(self) -> str:
        """"1,234 points", or "more than 100,000 points" where the server stopped counting."""
        return f"{self.total:,} points" if self.total_exact else f"more than {self.total - 1:,} points"


def downsampled_history(client: Any, run_id: str, key: str,
                        max_points: int = DEFAULT_MAX_POINTS, min_step: int | None = None,
                        max_step: int | None = None) -> Series:
    """At most ``max_points`` points of ``key`` for ``run_id`` (by step), extremes kept.

    ``client`` is an ``lt.Client``.  Against a server without the endpoint (a
    plain MLflow server) it falls back to the full history, thinned here.
    """
    message = {"run_id": run_id, "metric_key": key, "max_points": int(max_points),
               "min_step": min_step, "max_step": max_step}
    try:
        reply = client._read("GET", "metrics/history-downsampled", message, api=LABTRACK_API)
    except LabtrackError as exc:
        if exc.error_code != "ENDPOINT_NOT_FOUND":
            raise
        return _thinned(client.get_metric_history(run_id, key), run_id, key, max_points,
                        min_step, max_step)
    points = [Metric.from_json({"key": key, **p}) for p in reply.get("metrics") or []]
    return Series(run_id, key, points, int(reply.get("total") or len(points)),
                  bool(reply.get("downsampled")), reply.get("total_exact") is not False)


def _thinned(history: list[Metric], run_id: str, key: str, max_points: int,
             min_step: int | None, max_step: int | None) -> Series:
    points = sorted((m for m in history
                     if (min_step is None or m.step >= min_step)
                     and (max_step is None or m.step <= max_step)),
                    key=lambda m: (m.step, m.timestamp))
    total = len(points)
    if total <= max_points:
        return Series(run_id, key, points, total, False)
    stride = -(-total // max_points)
    return Series(run_id, key, points[::stride] + points[-1:], total, True)

"""matplotlib charts drawn off-screen (Agg) into PNG bytes for an ``Image`` widget.

``matplotlib.figure.Figure`` with its own Agg canvas, never ``pyplot``: no
global figure list to leak into, no backend switch in the user's session, and
it works in a kernel thread or a plain script alike.  matplotlib is imported
only when a chart is drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

X_AXES = ("step", "relative", "wall")
X_LABELS = {"step": "step", "relative": "time since the run's first point (s)", "wall": "time"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start.

    ``weight`` 0 leaves the values as they are; 0.9 averages over about 10 points.
    NaN and infinite points are passed through and do not poison the average.
    """
    if weight <= 0:
        return list(values)
    weight = min(weight, 0.999)
    out: list[float] = []
    last, count = 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        count += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** count))
    return out


def x_values(steps: Sequence[int], timestamps: Sequence[int], x: str) -> list[Any]:
    """The x coordinates of one line: step, seconds since its first point, or wall time."""
    if x == "step":
        return list(steps)
    if x == "relative":
        t0 = min(timestamps) if timestamps else 0
        return [(t - t0) / 1000 for t in timestamps]
    if x == "wall":
        return [datetime.fromtimestamp(t / 1000) for t in timestamps]
    raise ValueError(f"x must be one of {X_AXES}, not {x!r}")


def new_figure(width: float = 7.0, height: float = 3.6, dpi: int = 90, fixed: bool = False) -> Any:
    """An off-screen figure with one axes (Agg canvas attached).

    ``fixed`` margins instead of constrained layout: a redraw then lays out its
    text once instead of twice, which halves a live chart's drawing time.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=None if fixed else "constrained")
    if fixed:
        fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.15)
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1)
    return fig


def line_chart(lines: Sequence[tuple[str, Sequence[Any], Sequence[float]]], *, title: str = "",
               x: str = "step", log_scale: bool = False, smoothing: float = 0.0,
               width: float = 7.0, height: float = 3.6) -> Any:
    """A figure with one line per ``(label, xs, ys)``; smoothed lines keep a faint raw copy."""
    fig = new_figure(width, height)
    ax = fig.axes[0]
    for i, (label, xs, ys) in enumerate(lines):
        color = PALETTE[i % len(PALETTE)]
        if smoothing > 0:
            ax.plot(xs, ys, color=color, alpha=0.25, linewidth=1, label="_raw")
            ax.plot(xs, smooth(ys, smoothing), color=color, linewidth=1.6, label=label)
        else:
            ax.plot(xs, ys, color=color, linewidth=1.4, label=label)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel(X_LABELS.get(x, x))
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if lines:
        ax.legend(fontsize=8, loc="best")
    if x == "wall":
        fig.autofmt_xdate()
    return fig


def labelled_lines(fig: Any) -> list[Any]:
    """The lines of a chart that stand for a run or a metric (not the faint raw copies)."""
    return [line for ax in fig.axes for line in ax.get_lines()
            if not str(line.get_label()).startswith("_")]


def png(fig: Any, dpi: int | None = None) -> bytes:
    """The figure as PNG bytes (light compression: the bytes go over a local websocket)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()

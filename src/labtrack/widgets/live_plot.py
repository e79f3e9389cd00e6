"""``lt.widgets.LivePlot``: a chart of a training loop's metrics that redraws at a bounded rate.

Usage::

    plot = lt.widgets.LivePlot("loss", "val_loss")
    display(plot)                       # or make it the cell's last expression
    for step in range(n):
        loss = train_step()
        lt.log_metric("loss", loss, step=step)
        plot.update(step=step, loss=loss)   # or plot.log_metrics(step=step, loss=loss): logs AND plots
    plot.finish()                       # the final picture, whatever the rate allowed

The first ``update`` draws at once, so the chart appears with the loop's first
point (on a one-point axis around it, not a degenerate one).  After that,
``update`` only appends to a list and redraws (in the caller's thread, so no
second thread fights the loop for the GIL) when a redraw is due: ``max_fps``
times a second (2 by default) counted from the start of the last draw, unless
drawing is so slow that this would spend more than ``max_draw_share`` (25%) of
the loop's time drawing; then it waits ``draw_time / max_draw_share``.  A
quick loop therefore sees twice-a-second refreshes even on a loaded machine
(an Agg draw of this chart takes 0.05-0.15 s), and a slow one is never slowed
by more than that share.  The figure is made once; a redraw moves the lines'
data, and each line keeps at most ``2 * max_points`` points (older ones are
thinned).  Displayed, the chart also leaves a static copy (the last PNG) in the
notebook, which a reopened notebook shows once the live widget is gone
(``fallback.py``); ``finish`` brings it up to date.
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets

from labtrack.widgets import markup
from labtrack.widgets.fallback import StaticFallback, png_img


class _Line:
    """One metric's points, thinned by half whenever it doubles past its cap."""

    def __init__(self, cap: int) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.times: list[float] = []
        self.cap = cap

    def add(self, x: float, y: float, t: float) -> None:
        self.xs.append(x)
        self.ys.append(y)
        self.times.append(t)
        if len(self.xs) > 2 * self.cap:
            # Keep every other point (and always the newest): memory and draw time stay bounded.
            self.xs, self.ys, self.times = (self.xs[-1::-2][::-1], self.ys[-1::-2][::-1],
                                            self.times[-1::-2][::-1])


def _widen_single_point(ax: Any, lines: Any) -> None:
    """Give a chart whose points share one x (or one y) a readable range around it.

    matplotlib's own margin around a single value is +-5% of it (or +-0.055 at 0), so
    the first point of a loop sat on an axis reading -0.04 ... 0.04.
    """
    xs = [x for line in lines for x in line.xs]
    ys = [y for line in lines for y in line.ys if y == y and abs(y) != float("inf")]
    if xs and min(xs) == max(xs):
        ax.set_xlim(xs[0] - 1, xs[0] + 1)
    if ys and min(ys) == max(ys) and ax.get_yscale() == "linear":
        pad = max(abs(ys[0]) * 0.1, 1e-3)
        ax.set_ylim(ys[0] - pad, ys[0] + pad)


class LivePlot(StaticFallback, widgets.VBox):
    """A live line chart of ``metrics`` (all metrics given to ``update`` if none are named).

    ``x``: ``"step"`` or ``"relative"`` (seconds since the first update).
    ``max_fps``: redraws per second at most.  ``max_draw_share``: the largest
    share of wall time spent drawing.  ``smoothing``: 0..1, as in the RunTable.
    """

    def __init__(self, *metrics: str, x: str = "step", log_scale: bool = False,
                 smoothing: float = 0.0, max_fps: float = 2.0, max_draw_share: float = 0.25,
                 max_points: int = 1000, title: str = "", width: float = 7.0,
                 height: float = 3.4) -> None:
        if x not in ("step", "relative"):
            raise ValueError("x must be 'step' or 'relative'")
        self.metrics = list(metrics)
        self.x = x
        self.log_scale = log_scale
        self.smoothing = smoothing
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.max_draw_share = max_draw_share
        self.max_points = max_points
        self.title = title
        self.redraws = 0  # how many times the chart was drawn
        self.draw_seconds = 0.0  # time spent drawing, in total
        self.first_draw_seconds = 0.0  # the first draw loads fonts and fills caches: a one-off
        self.updates = 0
        self.figure: Any = None
        self._size = (width, height)
        self._lines: dict[str, _Line] = {}
        self._artists: dict[str, tuple[Any, Any]] = {}
        self._step = -1
        self._t0: float | None = None
        self._last_draw = -float("inf")
        self.last_draw_seconds = 0.0
        self._dirty = False
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.status = widgets.HTML()
        super().__init__(children=[self.image, self.status])

    # -- feeding ------------------------------------------------------------------------
    def update(self, step: int | None = None, **values: float) -> bool:
        """Add one point per metric; redraw if one is due.  Returns whether it redrew.

        ``step`` defaults to one more than the last.  Metrics not named when the
        plot was made are ignored (so ``update(**all_metrics)`` is fine).
        """
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        self._step = self._step + 1 if step is None else int(step)
        x = self._step if self.x == "step" else now - self._t0
        for key, value in values.items():
            if self.metrics and key not in self.metrics:
                continue
            line = self._lines.get(key)
            if line is None:
                line = self._lines[key] = _Line(self.max_points)
            line.add(x, float(value), now)
        self.updates += 1
        self._dirty = True
        if self.due(now):
            self.draw()
            return True
        return False

    def log_metrics(self, step: int | None = None, **values: float) -> bool:
        """``lt.log_metrics(values, step=step)`` on the active run, then :meth:`update`.

        (Not ``log``: ipywidgets keeps its logger there.)
        """
        from labtrack.client import fluent

        if step is None:
            step = self._step + 1
        fluent.log_metrics(dict(values), step=step)
        return self.update(step=step, **values)

    def due(self, now: float | None = None) -> bool:
        """Whether a redraw may happen now under both limits (rate and share of time)."""
        now = time.perf_counter() if now is None else now
        wait = max(self.min_interval,
                   self.last_draw_seconds / self.max_draw_share if self.max_draw_share > 0 else 0.0)
        return now - self._last_draw >= wait

    # -- drawing ------------------------------------------------------------------------
    def draw(self) -> None:
        """Redraw now (``update`` calls this when due; ``finish`` at the end)."""
        from labtrack.widgets.charts import PALETTE, new_figure, png, smooth

        if self.figure is None:
            self.figure = new_figure(*self._size, fixed=True)
            ax = self.figure.axes[0]
            ax.set_xlabel("step" if self.x == "step" else "seconds")
            ax.grid(True, alpha=0.3)
            if self.title:
                ax.set_title(self.title)
            if self.log_scale:
                ax.set_yscale("log")
        # Timed from here: the one-off import and figure set-up must not stretch the interval.
        start = time.perf_counter()
        ax = self.figure.axes[0]
        order = self.metrics or list(self._lines)
        for i, key in enumerate(order):
            line = self._lines.get(key)
            if line is None:
                continue
            if key not in self._artists:
                color = PALETTE[i % len(PALETTE)]
                raw, = ax.plot([], [], color=color, alpha=0.25 if self.smoothing else 1.0,
                               linewidth=1, label="_raw" if self.smoothing else key)
                smoothed = None
                if self.smoothing:
                    smoothed, = ax.plot([], [], color=color, linewidth=1.6, label=key)
                self._artists[key] = (raw, smoothed)
                ax.legend(fontsize=8, loc="upper right")
            raw, smoothed = self._artists[key]
            raw.set_data(line.xs, line.ys)
            if smoothed is not None:
                smoothed.set_data(line.xs, smooth(line.ys, self.smoothing))
        ax.relim()
        ax.autoscale_view()
        _widen_single_point(ax, self._lines.values())
        self.image.value = png(self.figure)
        latest = " · ".join(f"{markup.esc(k)} {markup.esc(f'{v.ys[-1]:.4g}')}"
                            for k, v in self._lines.items() if v.ys)
        self.status.value = f"<small>step {markup.esc(self._step)} · {latest}</small>"
        self.redraws += 1
        self._dirty = False
        end = time.perf_counter()
        cost = end - start
        if self.redraws == 1:
            # Not a measure of the next draws: pacing by it would freeze the chart for seconds.
            self.first_draw_seconds, cost = cost, 0.0
        self.last_draw_seconds = cost
        self.draw_seconds += end - start
        self.update_fallback()  # every few seconds at most: the PNG goes to the notebook file
        # Paced from the draw's start: a 0.1 s draw every 0.5 s is twice a second, not 1.7 times.
        self._last_draw = start

    def fallback_html(self) -> str:
        """The static copy kept in the notebook: the last picture and its caption."""
        return png_img(self.image.value, self.title or "live plot") + self.status.value

    def finish(self) -> None:
        """Draw the last points if they are not on the chart yet; save the final picture."""
        if self._dirty or self.figure is None:
            self.draw()
        self.update_fallback(force=True)

    def __enter__(self) -> LivePlot:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    def __repr__(self) -> str:
        return f"LivePlot({', '.join(map(repr, self.metrics))}, redraws={self.redraws})"

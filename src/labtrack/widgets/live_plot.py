"""``lt.widgets.LivePlot``: a chart of a training loop's metrics that redraws at a bounded rate.

Usage::

    plot = lt.widgets.LivePlot("loss", "val_loss")
    display(plot)                       # or make it the cell's last expression
    for step in range(n):
        loss = train_step()
        lt.log_metric("loss", loss, step=step)
        plot.update(step=step, loss=loss)   # or plot.log_metrics(step=step, loss=loss): logs AND plots
    plot.finish()                       # the final picture, whatever the rate allowed

Why it never slows training noticeably: ``update`` only appends to a list.  It
redraws (in the caller's thread, so no second thread fights the loop for the
GIL) only when a redraw is due: at most ``max_fps`` times a second, and never
sooner than ``draw_time / max_draw_share`` after the last one, so drawing takes
at most ``max_draw_share`` (default 2%) of the loop's time however slow the
machine is.  The figure is made once; a redraw moves the lines' data, and each
line keeps at most ``2 * max_points`` points (older ones are thinned).
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets

from labtrack.widgets import markup


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


class LivePlot(widgets.VBox):
    """A live line chart of ``metrics`` (all metrics given to ``update`` if none are named).

    ``x``: ``"step"`` or ``"relative"`` (seconds since the first update).
    ``max_fps``: redraws per second at most.  ``max_draw_share``: the largest
    share of wall time spent drawing.  ``smoothing``: 0..1, as in the RunTable.
    """

    def __init__(self, *metrics: str, x: str = "step", log_scale: bool = False,
                 smoothing: float = 0.0, max_fps: float = 2.0, max_draw_share: float = 0.02,
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
        self._last_draw = end

    def finish(self) -> None:
        """Draw the last points if they are not on the chart yet."""
        if self._dirty or self.figure is None:
            self.draw()

    def __enter__(self) -> LivePlot:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    def __repr__(self) -> str:
        return f"LivePlot({', '.join(map(repr, self.metrics))}, redraws={self.redraws})"

"""``lt.widgets.RunTable``: a live, filterable, sortable, paged table of runs in a notebook.

The table itself is one ``<table>`` of HTML in a small anywidget
(``table_view.py``) that reports clicks: a click on a row selects or unselects
that run, a click on a header sorts by that column (again: the other way).
It looks like the web UI's runs table.  The other controls are core widgets:

- **Filter**: MLflow's filter grammar, applied by the server.  A filter the
  server rejects shows its message and keeps the rows that were there.
- **Sort**: any column; the server sorts (``order_by``) except by duration,
  which MLflow cannot express, so those runs (up to ``LOCAL_SORT_LIMIT``) are
  fetched and sorted here.
- **Select**: click rows (or ``select(ids)``); the selection survives paging
  and refreshes, and ``selected`` holds the run ids.
- **Pages** of ``page_size`` runs, walked with the server's page tokens.
- **Plot** / **Compare** / **Open** act on the selection and draw below.

Live refresh: while a shown run is RUNNING, a daemon thread re-reads only those
runs (``attributes.run_id IN (...)``) and asks whether any run started since the
newest one seen (``attributes.start_time > t``); it redraws only when something
changed, at most ``1 / refresh_interval`` times a second, and stops when every
shown run has finished or the widget is closed.  HTTP waits release the GIL, so
the kernel is never blocked.

Displayed, the table also leaves a static HTML copy of itself (rows, and the
last Plot as a PNG) in the notebook, which a reopened notebook shows once the
live widget is gone (``fallback.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from labtrack.entities import Experiment, Run
from labtrack.errors import LabtrackError
from labtrack.widgets import markup
from labtrack.widgets.fallback import StaticFallback, png_img
from labtrack.widgets.columns import (
    BASE_COLUMNS,
    Column,
    auto_columns,
    column,
    parse_order,
    run_name,
    sort_locally,
)

LOCAL_SORT_LIMIT = 10_000  # runs fetched to sort by a column the server cannot order by
MIN_REFRESH_INTERVAL = 0.5  # never more than 2 refreshes a second
PLOT_POINTS = 1000  # points per line asked of the server (it keeps extremes)


def _experiment_ids(client: Any, experiment: Any) -> list[str]:
    """Experiment ids from an id, a name, an ``Experiment``, or a list of them; None = the active one."""
    if experiment is None:
        from labtrack.client import fluent

        return [fluent._experiment_id()]
    items = experiment if isinstance(experiment, (list, tuple)) else [experiment]
    ids: list[str] = []
    for item in items:
        if isinstance(item, Experiment):
            ids.append(item.experiment_id)
            continue
        text = str(item)
        found = client.get_experiment_by_name(text)
        if found is not None:
            ids.append(found.experiment_id)
        elif text.isdigit():
            ids.append(text)
        else:
            raise LabtrackError(f"no experiment named {text!r}", "RESOURCE_DOES_NOT_EXIST")
    return ids


def _and(*clauses: str) -> str:
    return " and ".join(c.strip() for c in clauses if c and c.strip())


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class RunTable(StaticFallback, widgets.VBox):
    """A table of an experiment's runs with filter, sort, selection, paging and live refresh.

    ``experiment``: id, name, ``Experiment`` or a list of them (default: the active
    experiment).  ``filter``: an MLflow filter string.  ``order_by``: MLflow order_by
    entries (the first one picks the sort column).  ``columns``: extra columns such
    as ``["params.lr", "metrics.loss", "tags.team"]`` after status, name, start and
    duration (default: the most common params and metrics of the first page).
    ``client``: an ``lt.Client`` (default: the fluent API's).
    """

    def __init__(self, experiment: Any = None, filter: str = "",
                 order_by: Sequence[str] | str | None = None, columns: Sequence[str] | None = None,
                 page_size: int = 50, *, client: Any = None, refresh_interval: float = 1.0,
                 live: bool = True) -> None:
        from labtrack.widgets.links import ui_base

        if client is None:
            from labtrack.client import fluent

            client = fluent._client()
        self.client = client
        self.experiment_ids = _experiment_ids(client, experiment)
        self.page_size = max(1, int(page_size))
        self.refresh_interval = max(MIN_REFRESH_INTERVAL, float(refresh_interval))
        self.live = live
        self.ui_base = ui_base(client)

        self.filter = filter or ""
        self.error: str | None = None
        self.runs: list[Run] = []
        self.selected_run_ids: list[str] = []
        self.page = 0
        self.figure: Any = None  # the last Plot's matplotlib figure
        self.differences: list[str] = []  # params that differ in the last Compare
        self.refreshes = 0  # refresh rounds done by the live thread (for tests and curiosity)
        self._tokens: list[str | None] = [None]  # page i is fetched with _tokens[i]
        self._local: list[Run] | None = None  # all runs, when sorted here
        self._since = 0  # newest start_time seen: runs after it are new
        self._lock = threading.RLock()
        self._generation = 0  # bumped by each reload; a refresh of an older one is dropped
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._has_next = False
        self._sync = threading.local()  # set while this thread writes a control's value itself

        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
        self._extra_order = orders[1:]
        self.sort_key, self.ascending = parse_order(orders[0]) if orders else ("start", False)
        self._explicit_columns = [column(c).key for c in columns] if columns is not None else None
        self.columns: list[Column] = [column(k) for k in BASE_COLUMNS]

        self._build_controls()
        super().__init__(children=self._layout())
        self.reload()

    # -- controls ---------------------------------------------------------------------
    def _build_controls(self) -> None:
        w = widgets
        self.filter_box = w.Text(value=self.filter, description="Filter",
                                 placeholder="metrics.loss < 0.5 and params.lr = '0.01'",
                                 continuous_update=False, layout=w.Layout(width="60%"))
        self.filter_box.observe(lambda ch: self.set_filter(ch["new"]), names="value")
        self.sort_dropdown = w.Dropdown(description="Sort by", layout=w.Layout(width="260px"))
        self.order_buttons = w.ToggleButtons(options=[("▼ desc", False), ("▲ asc", True)],
                                             value=self.ascending, style={"button_width": "76px"})
        self.sort_dropdown.observe(self._on_sort_widget, names="value")
        self.order_buttons.observe(self._on_sort_widget, names="value")
        self.message = w.HTML()
        from labtrack.widgets.table_view import table_view_class

        self.table = table_view_class()()
        self.table.observe(self._on_table_select, names="selected")
        self.table.observe(self._on_header_click, names="sort_click")
        self.prev_button = w.Button(description="◀ prev", layout=w.Layout(width="80px"))
        self.next_button = w.Button(description="next ▶", layout=w.Layout(width="80px"))
        self.page_label = w.HTML()
        self.prev_button.on_click(lambda _: self.prev_page())
        self.next_button.on_click(lambda _: self.next_page())
        self.metric_dropdown = w.Dropdown(description="Metric", layout=w.Layout(width="260px"))
        self.x_buttons = w.ToggleButtons(options=[("step", "step"), ("relative time", "relative"),
                                                  ("wall time", "wall")], value="step",
                                         style={"button_width": "112px"})
        self.smoothing_slider = w.FloatSlider(value=0.0, min=0.0, max=0.99, step=0.01,
                                              description="Smoothing")
        self.log_checkbox = w.Checkbox(value=False, description="log scale", indent=False)
        self.plot_button = w.Button(description="Plot", icon="line-chart", button_style="primary")
        self.compare_button = w.Button(description="Compare", icon="columns")
        self.open_button = w.Button(description="Open", icon="external-link")
        self.plot_button.on_click(lambda _: self.plot())
        self.compare_button.on_click(lambda _: self.compare())
        self.open_button.on_click(lambda _: self.open_links())
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.detail = w.HTML()
        self.output = w.VBox()  # Plot, Compare and Open draw here

    def _layout(self) -> list[Any]:
        w = widgets
        return [
            w.HBox([self.filter_box]),
            w.HBox([self.sort_dropdown, self.order_buttons]),
            self.message,
            self.table,
            w.HBox([self.prev_button, self.page_label, self.next_button]),
            w.HBox([self.metric_dropdown, self.x_buttons]),
            w.HBox([self.smoothing_slider, self.log_checkbox]),
            w.HBox([self.plot_button, self.compare_button, self.open_button]),
            self.output,
        ]

    # -- fetching ---------------------------------------------------------------------
    @property
    def sort_column(self) -> Column:
        return column(self.sort_key)

    def _order_by(self) -> list[str] | None:
        col = self.sort_column
        if col.order_by is None:
            return None
        direction = "ASC" if self.ascending else "DESC"
        # start_time breaks ties the way MLflow's default order does.
        tail = [] if col.key == "start" else ["attributes.start_time DESC"]
        return [f"{col.order_by} {direction}", *self._extra_order, *tail]

    def _search(self, filter_string: str, max_results: int, token: str | None = None,
                order_by: list[str] | None = None) -> Any:
        return self.client.search_runs(self.experiment_ids, filter_string,
                                       max_results=max_results, order_by=order_by,
                                       page_token=token)

    def _fetch_page(self, filter_string: str, page: int, tokens: list[str | None],
                    local: list[Run] | None) -> _Page:
        """Fetch ``page`` (no lock held: other threads, and the kernel, go on meanwhile)."""
        col = self.sort_column
        if col.order_by is None:
            if local is None or page == 0:
                everything: list[Run] = []
                token = None
                while len(everything) < LOCAL_SORT_LIMIT:
                    batch = self._search(filter_string,
                                         min(5000, LOCAL_SORT_LIMIT - len(everything)), token)
                    everything += batch
                    token = batch.token
                    if not token:
                        break
                local = sort_locally(everything, col, self.ascending)
            start = page * self.page_size
            return _Page(page, local[start:start + self.page_size],
                         len(local) > start + self.page_size, tokens, local)
        batch = self._search(filter_string, self.page_size, tokens[page], self._order_by())
        tokens = tokens[:page + 1] + [batch.token]
        return _Page(page, list(batch), bool(batch.token), tokens, None)

    def reload(self, page: int | None = None) -> bool:
        """Fetch a page again (default: the current one); False if the server refused."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            page = self.page if page is None else page
            filter_string, tokens, local = self.filter, list(self._tokens), self._local
        try:
            fetched = self._fetch_page(filter_string, page, tokens, local)
        except LabtrackError as exc:
            self._show_error(exc)
            return False
        with self._lock:
            if generation != self._generation:
                return False  # a newer reload (the user's next click) wins
            self.error = None
            self._apply(fetched)
        self._ensure_refresh()
        return True

    def _apply(self, fetched: _Page) -> None:
        self.page, self.runs, self._has_next = fetched.number, fetched.runs, fetched.more
        self._tokens, self._local = fetched.tokens, fetched.local
        self._since = max([self._since] + [r.info.start_time or 0 for r in fetched.runs])
        self._update_columns()
        self._render()

    def _show_error(self, exc: LabtrackError) -> None:
        self.error = exc.message
        self.message.value = markup.message(exc.message, error=True)

    def _update_columns(self) -> None:
        extra = self._explicit_columns if self._explicit_columns is not None else auto_columns(self.runs)
        keys = list(BASE_COLUMNS) + [k for k in extra if k not in BASE_COLUMNS]
        if self.sort_key not in keys:
            keys.append(self.sort_key)
        if [c.key for c in self.columns] != keys:
            self.columns = [column(k) for k in keys]
        options = [(c.key, c.key) for c in self.columns]
        self._sync.on = True
        try:
            if list(self.sort_dropdown.options) != options:
                self.sort_dropdown.options = options
            self.sort_dropdown.value = self.sort_key
            self.order_buttons.value = self.ascending
        finally:
            self._sync.on = False

    # -- rendering --------------------------------------------------------------------
    @property
    def table_html(self) -> str:
        """The table's current HTML (what the notebook shows)."""
        return self.table.html

    @property
    def selected(self) -> list[str]:
        """The selected runs' ids, in the order they were selected (clicks or ``select``)."""
        return list(self.selected_run_ids)

    def fallback_html(self) -> str:
        """The static copy kept in the notebook: the table, and what Plot/Compare/Open drew."""
        shown = self.output.children
        extra = ""
        if shown and shown[0] is self.image:
            extra = png_img(self.image.value, "plot of the selected runs")
        elif shown and shown[0] is self.detail:
            extra = self.detail.value
        return self.table_html + extra

    def _render(self) -> None:
        self.table.html = markup.run_table(
            self.runs, self.columns, selected=set(self.selected_run_ids), sort_key=self.sort_key,
            ascending=self.ascending, ui_base=self.ui_base)
        if self.error is None:
            self.message.value = ""
        first = self.page * self.page_size + 1
        last = self.page * self.page_size + len(self.runs)
        shown = f"runs {first}–{last}" if self.runs else "no runs"
        picked = f" · {len(self.selected_run_ids)} selected" if self.selected_run_ids else ""
        self.page_label.value = (f"&nbsp;page {self.page + 1} · {shown}{picked} · "
                                 "<i>click rows to select, a header to sort</i>&nbsp;")
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = not self._has_next
        self._sync_table_selection()
        self._update_metric_options()
        self.update_fallback()

    def _sync_table_selection(self) -> None:
        if list(self.table.selected) != self.selected_run_ids:
            self._sync.on = True
            try:
                self.table.selected = list(self.selected_run_ids)
            finally:
                self._sync.on = False

    def _update_metric_options(self) -> None:
        runs = self.selected_runs() or self.runs
        keys = sorted({k for r in runs for k in r.metrics})
        if list(self.metric_dropdown.options) != keys:
            current = self.metric_dropdown.value
            self.metric_dropdown.options = keys
            # ipywidgets leaves no option chosen after new options: keep the user's, else the first.
            self.metric_dropdown.value = current if current in keys else (keys[0] if keys else None)

    # -- user actions -----------------------------------------------------------------
    def set_filter(self, text: str) -> bool:
        """Apply an MLflow filter; on an error the message shows and the old rows stay."""
        if getattr(self._sync, "on", False):
            return True
        old = self.filter
        self.filter = (text or "").strip()
        if not self.reload(page=0):
            self.filter = old
            return False
        if self.filter_box.value != self.filter:
            self._sync.on = True
            try:
                self.filter_box.value = self.filter
            finally:
                self._sync.on = False
        return True

    def sort(self, key: str, ascending: bool = False) -> bool:
        """Sort by a column (``"start"``, ``"name"``, ``"metrics.loss"``...) and show page 1."""
        old = self.sort_key, self.ascending
        self.sort_key, self.ascending = column(key).key, bool(ascending)
        if not self.reload(page=0):
            self.sort_key, self.ascending = old
            self._update_columns()
            return False
        return True

    def _on_sort_widget(self, change: dict[str, Any]) -> None:
        if getattr(self._sync, "on", False) or self.sort_dropdown.value is None:
            return
        self.sort(self.sort_dropdown.value, self.order_buttons.value)

    def next_page(self) -> bool:
        if not self._has_next:
            return False
        return self.reload(page=self.page + 1)

    def prev_page(self) -> bool:
        if self.page == 0:
            return False
        return self.reload(page=self.page - 1)

    def select(self, run_ids: Sequence[str] | str, add: bool = False) -> None:
        """Select runs by id (replacing the selection unless ``add``)."""
        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        base = self.selected_run_ids if add else []
        self.selected_run_ids = base + [i for i in ids if i not in base]
        with self._lock:
            self._render()

    def _on_table_select(self, change: dict[str, Any]) -> None:
        """A click on a row (the front end sends the whole new selection)."""
        if getattr(self._sync, "on", False):
            return
        ids: list[str] = []
        for run_id in change["new"]:
            if isinstance(run_id, str) and run_id not in ids:
                ids.append(run_id)
        self.selected_run_ids = ids
        with self._lock:
            self._render()

    def _on_header_click(self, change: dict[str, Any]) -> None:
        """A click on a column header: sort by it, or the other way when it already sorts."""
        key = (change["new"] or {}).get("key")
        if not isinstance(key, str) or key not in {c.key for c in self.columns}:
            return
        ascending = not self.ascending if key == self.sort_key else False
        self.sort(key, ascending)

    def selected_runs(self) -> list[Run]:
        """The selected runs (those on other pages are fetched)."""
        by_id = {r.info.run_id: r for r in self.runs}
        if self._local:
            by_id.update({r.info.run_id: r for r in self._local})
        missing = [i for i in self.selected_run_ids if i not in by_id]
        if missing:
            for run_id in missing:
                try:
                    by_id[run_id] = self.client.get_run(run_id)
                except LabtrackError:
                    pass
        return [by_id[i] for i in self.selected_run_ids if i in by_id]

    # -- Plot, Compare, Open ----------------------------------------------------------
    def plot(self, metric: str | None = None, x: str | None = None, smoothing: float | None = None,
             log_scale: bool | None = None) -> Any:
        """Draw ``metric`` for the selected runs below the table; returns the matplotlib figure.

        Each line is the server's downsampled series (at most ``PLOT_POINTS`` points,
        extremes kept), so a million-point metric costs no more than a short one.
        """
        from labtrack.client.charts import downsampled_history
        from labtrack.widgets.charts import line_chart, png, x_values

        runs = self.selected_runs()
        metric = metric or self.metric_dropdown.value
        x = x or self.x_buttons.value
        smoothing = self.smoothing_slider.value if smoothing is None else smoothing
        log_scale = self.log_checkbox.value if log_scale is None else log_scale
        if not runs:
            return self._note("Select runs to plot.")
        if not metric:
            return self._note("The selected runs have no metrics.")
        lines = []
        for run in runs:
            if metric not in run.metrics:
                continue
            series = downsampled_history(self.client, run.info.run_id, metric, PLOT_POINTS)
            points = series.points
            lines.append((run_name(run), x_values([p.step for p in points],
                                                  [p.timestamp for p in points], x),
                          [p.value for p in points]))
        if not lines:
            return self._note(f"No selected run has the metric {metric!r}.")
        self.figure = line_chart(lines, title=metric, x=x, log_scale=bool(log_scale),
                                 smoothing=float(smoothing))
        self.image.value = png(self.figure)
        self.output.children = [self.image]
        self.update_fallback()
        return self.figure

    def compare(self) -> str:
        """Params of the selected runs side by side, differences marked; returns the HTML."""
        runs = self.selected_runs()
        if len(runs) < 2:
            self._note("Select two or more runs to compare.")
            return self.detail.value
        from labtrack.widgets.markup import compare_params, compare_table

        self.differences = [row.key for row in compare_params(runs) if row.differs]
        self.detail.value = compare_table(runs, self.ui_base)
        self.output.children = [self.detail]
        self.update_fallback()
        return self.detail.value

    def open_links(self) -> str:
        """**Open**: links to the selected runs' pages in the web UI (through the Jupyter proxy).

        (Not ``open``: that is ipywidgets' own method, which opens the widget's comm.)
        """
        self.detail.value = markup.links(self.selected_runs(), self.ui_base)
        self.output.children = [self.detail]
        self.update_fallback()
        return self.detail.value

    def _note(self, text: str) -> None:
        self.detail.value = markup.message(text)
        self.output.children = [self.detail]
        self.update_fallback()

    # -- live refresh -----------------------------------------------------------------
    @property
    def refreshing(self) -> bool:
        """Whether the live-refresh thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _running_ids(self) -> list[str]:
        return [r.info.run_id for r in self.runs if r.info.status == "RUNNING"]

    def _ensure_refresh(self) -> None:
        if not self.live or self._closed or self.refreshing or not self._running_ids():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="labtrack-RunTable-refresh",
                                        daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        failures = 0
        while not self._stop.wait(self.refresh_interval * (1 + min(failures, 10))):
            if self._closed or not self._running_ids():
                break
            try:
                self.refresh()
                failures = 0
            except Exception as exc:  # a server restart or a network blip: back off, keep going
                failures += 1
                self.message.value = markup.message(f"refresh failed: {exc}", error=True)
        with self._lock:
            if self._thread is threading.current_thread():
                self._thread = None

    def refresh(self) -> bool:
        """One refresh round: re-read the shown running runs; page 1 again if new runs started.

        Returns whether anything changed.  A user action (filter, sort, page) made
        meanwhile wins: this round's result is then dropped.
        """
        with self._lock:
            generation, filter_string, since = self._generation, self.filter, self._since
            page, tokens, running = self.page, list(self._tokens), self._running_ids()
        self.refreshes += 1
        changed: dict[str, Run] = {}
        if running:
            ids = ", ".join(_quote(i) for i in running)
            for run in self._search(f"attributes.run_id IN ({ids})", len(running)):
                changed[run.info.run_id] = run
        fetched: _Page | None = None
        if page == 0:
            newer = self._search(_and(filter_string, f"attributes.start_time > {since}"), 1,
                                 order_by=["attributes.start_time DESC"])
            if newer:
                fetched = self._fetch_page(filter_string, 0, tokens[:1], None)
                since = max(since, newer[0].info.start_time or 0)
        with self._lock:
            if generation != self._generation:
                return False
            self._since = max(self._since, since)
            if fetched is not None:
                self._apply(fetched)
                return True
            updated = [changed.get(r.info.run_id, r) for r in self.runs]
            different = any(_fingerprint(a) != _fingerprint(b) for a, b in zip(updated, self.runs))
            self.runs = updated
            # A running run's duration grows, so the table is redrawn each round anyway.
            self._render()
        return different

    def stop_refresh(self, timeout: float = 5.0) -> None:
        """Stop the live-refresh thread (it also stops by itself when no shown run is RUNNING)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def close(self) -> None:
        """Stop refreshing and close this widget and its controls."""
        self._closed = True
        if not hasattr(self, "_stop"):  # the constructor failed (ipywidgets still closes it)
            super().close()
            return
        self.stop_refresh()
        for child in (self.filter_box, self.sort_dropdown, self.order_buttons, self.message,
                      self.table, self.prev_button, self.next_button,
                      self.page_label, self.metric_dropdown, self.x_buttons, self.smoothing_slider,
                      self.log_checkbox, self.plot_button, self.compare_button, self.open_button,
                      self.image, self.detail, self.output):
            child.close()
        for box in self.children:
            box.close()
        super().close()

    def __repr__(self) -> str:
        return (f"RunTable(experiments={self.experiment_ids}, filter={self.filter!r}, "
                f"page={self.page + 1}, runs={len(self.runs)})")


@dataclass
class _Page:
    number: int
    runs: list[Run]
    more: bool
    tokens: list[str | None]  # page i is fetched with tokens[i]
    local: list[Run] | None  # every run, when sorted here


def _fingerprint(run: Run) -> tuple[Any, ...]:
    info = run.info
    return (info.status, info.end_time, info.run_name,
            tuple(sorted((k, m.value, m.step) for k, m in run.metrics.items())),
            tuple(sorted(run.params.items())), tuple(sorted(run.tags.items())))

"""The terminal viewer: pick an experiment, filter and sort its runs, see a run's metrics as sparklines.

It reads through ``lt.Client``, so it works against a labtrack or an MLflow
server, and it asks labtrack for downsampled series (a sparkline needs a few
dozen points, never a whole history).  Everything a user logged is shown as
plain text: names and values go into ``rich.text.Text``, never into markup.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Label, Sparkline, Static

from labtrack.client.charts import downsampled_history
from labtrack.errors import LabtrackError

PAGE = 500
MAX_PARAM_COLUMNS = 6
MAX_METRIC_COLUMNS = 6
MAX_SPARKLINES = 8
SPARK_POINTS = 80


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return "" if value is None else str(value)


def _duration(run: Any) -> str:
    start, end = run.info.start_time, run.info.end_time
    if not start:
        return ""
    seconds = ((end or time.time() * 1000) - start) / 1000
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


class LabtrackTUI(App[None]):
    """Experiments on the left; the selected experiment's runs, a filter and the run's charts on the right."""

    TITLE = "labtrack"
    CSS = """
    #experiments-pane { width: 32; border-right: solid $panel; }
    #runs { height: 1fr; }
    #detail { height: 14; border-top: solid $panel; }
    #status { height: 1; color: $text-muted; }
    #status.error { color: $error; }
    .spark-label { height: 1; }
    Sparkline { height: 2; margin-bottom: 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("s", "sort", "Sort by column"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, client: Any, experiment: str | None = None) -> None:
        super().__init__()
        self.client = client
        self.wanted_experiment = experiment
        self.experiment_ids: list[str] = []
        self.experiment_id: str | None = None
        self.filter = ""
        self.order_by: list[str] = []
        self.columns: list[str] = []       # the order_by key of each runs column
        self.run_ids: list[str] = []
        self.loaded = 0                    # bumped whenever the runs table was redrawn (tests wait on it)
        self.detail_run: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="experiments-pane"):
                yield Label("Experiments")
                yield DataTable(id="experiments", cursor_type="row")
            with Vertical():
                yield Input(placeholder="filter, e.g. metrics.loss < 0.5 and params.lr = '0.1'  (Enter)",
                            id="filter")
                yield Label("", id="status")
                yield DataTable(id="runs", cursor_type="cell", zebra_stripes=True)
                with VerticalScroll(id="detail"):
                    yield Static("", id="run-title")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#experiments", DataTable).add_columns("id", "name")
        self.load_experiments()

    # -- experiments ---------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="experiments")
    def load_experiments(self) -> None:
        try:
            experiments = self.client.search_experiments()
        except LabtrackError as err:
            self.call_from_thread(self._status, err.message, True)
            return
        self.call_from_thread(self._show_experiments, experiments)

    def _show_experiments(self, experiments: list[Any]) -> None:
        table = self.query_one("#experiments", DataTable)
        table.clear()
        self.experiment_ids = [e.experiment_id for e in experiments]
        for e in experiments:
            table.add_row(Text(e.experiment_id), Text(e.name))
        if not experiments:
            self._status("no experiments yet: log a run, then press r", False)
            return
        start = 0
        if self.wanted_experiment is not None:
            for i, e in enumerate(experiments):
                if self.wanted_experiment in (e.name, e.experiment_id):
                    start = i
        table.move_cursor(row=start)
        self._select_experiment(self.experiment_ids[start])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "experiments" and event.cursor_row < len(self.experiment_ids):
            chosen = self.experiment_ids[event.cursor_row]
            if chosen != self.experiment_id:
                self._select_experiment(chosen)

    def _select_experiment(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self.order_by = []
        self.load_runs()

    # -- runs ----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="runs")
    def load_runs(self) -> None:
        if self.experiment_id is None:
            return
        try:
            runs = list(self.client.search_runs([self.experiment_id], self.filter, max_results=PAGE,
                                                order_by=self.order_by or None))
        except LabtrackError as err:
            # A filter the server refuses: say why, keep the rows as they were.
            self.call_from_thread(self._status, err.message, True)
            return
        self.call_from_thread(self._show_runs, runs)

    def _show_runs(self, runs: list[Any]) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        params = sorted({k for r in runs for k in r.params})[:MAX_PARAM_COLUMNS]
        metrics = sorted({k for r in runs for k in r.metrics if not k.startswith("system/")})[:MAX_METRIC_COLUMNS]
        self.columns = (["attributes.run_name", "attributes.status", "attributes.start_time", ""]
                        + [f"params.`{p}`" for p in params] + [f"metrics.`{m}`" for m in metrics])
        sort = {o.rsplit(" ", 1)[0]: o.rsplit(" ", 1)[1] for o in self.order_by if " " in o}
        labels = ["run", "status", "started", "duration"] + params + metrics
        for label, key in zip(labels, self.columns):
            mark = {"ASC": " ▲", "DESC": " ▼"}.get(sort.get(key, ""), "")
            table.add_column(Text(label + mark), key=key or "duration")
        self.run_ids = []
        for r in runs:
            started = time.strftime("%m-%d %H:%M", time.localtime(r.info.start_time / 1000)) \
                if r.info.start_time else ""
            cells = [r.info.run_name or r.info.run_id[:8], r.info.status, started, _duration(r)]
            cells += [r.params.get(p, "") for p in params]
            cells += [_fmt(r.metrics[m].value) if m in r.metrics else "" for m in metrics]
            table.add_row(*(Text(str(c)) for c in cells), key=r.info.run_id)
            self.run_ids.append(r.info.run_id)
        what = f"{len(runs)} run(s)" + (" (first page)" if len(runs) >= PAGE else "")
        self._status(what + (f" matching {self.filter}" if self.filter else ""), False)
        sorted_by = self.order_by[0].rsplit(" ", 1)[0] if self.order_by else None
        if sorted_by in self.columns and self.run_ids:  # stay on the column just sorted by
            table.move_cursor(row=0, column=self.columns.index(sorted_by))
        self.loaded += 1
        if self.run_ids:
            self.show_detail(self.run_ids[0])

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if event.data_table.id == "runs" and event.coordinate.row < len(self.run_ids):
            run_id = self.run_ids[event.coordinate.row]
            if run_id != self.detail_run:
                self.show_detail(run_id)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.data_table.id == "runs":
            self._sort(event.column_index)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filter = event.value.strip()
        self.load_runs()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_refresh(self) -> None:
        if self.experiment_id is None:
            self.load_experiments()
        else:
            self.load_runs()

    def action_sort(self) -> None:
        table = self.query_one("#runs", DataTable)
        self._sort(table.cursor_coordinate.column)

    def _sort(self, column: int) -> None:
        if column >= len(self.columns) or not self.columns[column]:
            self._status("this column cannot be sorted by the server", True)
            return
        key = self.columns[column]
        current = self.order_by[0] if self.order_by else ""
        direction = "ASC" if current == f"{key} DESC" else "DESC"
        self.order_by = [f"{key} {direction}"]
        self.load_runs()

    # -- one run's charts ----------------------------------------------------------------
    @work(thread=True, exclusive=True, group="detail")
    def show_detail(self, run_id: str) -> None:
        self.detail_run = run_id
        try:
            run = self.client.get_run(run_id)
            keys = sorted(run.metrics, key=lambda k: (k.startswith("system/"), k))[:MAX_SPARKLINES]
            series = [(k, downsampled_history(self.client, run_id, k, SPARK_POINTS)) for k in keys]
        except LabtrackError as err:
            self.call_from_thread(self._status, err.message, True)
            return
        self.call_from_thread(self._draw_detail, run, series)

    def _draw_detail(self, run: Any, series: list[tuple[str, Any]]) -> None:
        box = self.query_one("#detail", VerticalScroll)
        for child in list(box.children)[1:]:
            child.remove()
        title = Text(f"{run.info.run_name or run.info.run_id}  ·  {run.info.status}  ·  {run.info.run_id}")
        self.query_one("#run-title", Static).update(title)
        widgets = []
        for key, s in series:
            values = [p.value for p in s.points if p.value == p.value]  # NaN cannot be drawn
            if not values:
                continue
            label = Text(f"{key}  last {_fmt(values[-1])}  min {_fmt(min(values))}  max {_fmt(max(values))}"
                         f"  ({s.total_text()})")
            widgets += [Static(label, classes="spark-label"), Sparkline(values, summary_function=max)]
        if not widgets:
            widgets = [Static(Text("no metrics"), classes="spark-label")]
        box.mount_all(widgets)

    def _status(self, message: str, error: bool) -> None:
        label = self.query_one("#status", Label)
        label.update(Text(message))
        label.set_class(error, "error")


def run_tui(tracking_uri: str | None = None, experiment: str | None = None) -> None:
    """Open the viewer on ``tracking_uri`` (default: as ``lt`` finds its server)."""
    from labtrack.client.client import Client

    LabtrackTUI(Client(tracking_uri), experiment).run()

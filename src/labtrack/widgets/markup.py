"""HTML for the widgets: the run table, the params comparison, links and messages.

ipywidgets' HTML view sets ``innerHTML`` unsanitised, and behind the Jupyter
proxy the page is same-origin with JupyterLab, so an unescaped run name is
code execution as the user (DESIGN decision 5).  Every text that came from a
run goes through :func:`esc`; nothing here builds markup any other way.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from labtrack.entities import Run
from labtrack.widgets.columns import Column, format_value, run_name

# The web UI's look (src/ui/src/style.css): its palette, dense rows, status pills; rows and
# headers of the run table take clicks (table_view.py).  ``table.lt-table.lt-table`` outranks
# JupyterLab's right-aligned cells in an HTML output (the static copy, fallback.py).
STYLE = """<style>
table.lt-table{border-collapse:collapse;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,
 "Helvetica Neue",Arial,sans-serif;color:#1d232b;background:#fff}
table.lt-table.lt-table th,table.lt-table.lt-table td{padding:4px 10px;border-bottom:1px solid #dfe3e8;text-align:left;
 white-space:nowrap;max-width:24em;overflow:hidden;text-overflow:ellipsis;vertical-align:top}
table.lt-table th{background:#f5f7f9;font-weight:600}
table.lt-table a{color:#1f5f8b;text-decoration:none}
table.lt-table a:hover{text-decoration:underline}
.lt-table-view table.lt-runs th[data-col]{cursor:pointer;user-select:none}
table.lt-runs th.lt-sorted{color:#1f5f8b}
.lt-table-view table.lt-runs tbody tr[data-run-id]{cursor:pointer}
.lt-table-view table.lt-runs tbody tr[data-run-id]:hover td{background:#f5f7f9}
table.lt-table tr.lt-selected td,table.lt-runs tbody tr.lt-selected:hover td{background:#e8f1f8}
table.lt-table.lt-table td.lt-num{text-align:right;font-variant-numeric:tabular-nums}
table.lt-table tr.lt-diff td{background:#fff3cd}
.lt-status{font-size:11px;font-weight:600;padding:1px 6px;border-radius:8px;background:#f5f7f9}
.lt-status-RUNNING{color:#0b5cad;background:#e1eefa}
.lt-status-FINISHED{color:#1e7f3c;background:#e3f3e7}
.lt-status-FAILED,.lt-status-KILLED{color:#b3261e;background:#fbe6e4}
.lt-error{color:#b3261e;white-space:pre-wrap}
</style>"""


def esc(value: object) -> str:
    """Escape any value for HTML text and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def run_link(run: Run, base: str | None) -> str:
    """The run's name, linked to its page in the web UI when the UI can be reached."""
    name = esc(run_name(run))
    if not base:
        return name
    href = esc(f"{base}#/runs/{run.info.run_id}")
    return f"<a href=\"{href}\" target=\"_blank\" rel=\"noopener\" title=\"open in labtrack\">{name}</a>"


def run_table(runs: Sequence[Run], columns: Sequence[Column], *, selected: set[str] | None = None,
              sort_key: str | None = None, ascending: bool = False,
              ui_base: str | None = None) -> str:
    """One ``<table>``: a row per run, ``data-run-id`` on each row for tests and tools."""
    selected = selected or set()
    arrow = "▲" if ascending else "▼"
    sorted_cls = ' class="lt-sorted"'
    head = "".join(
        f"<th data-col=\"{esc(c.key)}\"{sorted_cls if c.key == sort_key else ''}"
        f" title=\"{esc(c.key)} (click to sort)\">{esc(c.label)}"
        f"{' ' + arrow if c.key == sort_key else ''}</th>" for c in columns)
    body: list[str] = []
    for run in runs:
        run_id = run.info.run_id
        cells: list[str] = []
        for c in columns:
            if c.key == "name":
                cells.append(f"<td>{run_link(run, ui_base)}</td>")
            elif c.key == "status":
                status = esc(run.info.status)
                cells.append(f"<td><span class=\"lt-status lt-status-{status}\">{status}</span></td>")
            else:
                numeric = c.key.startswith("metrics.") or c.key == "duration"
                cls = " class=\"lt-num\"" if numeric else ""
                cells.append(f"<td{cls}>{esc(c.text(run))}</td>")
        mark = "✓" if run_id in selected else ""
        row_cls = " class=\"lt-selected\"" if run_id in selected else ""
        body.append(f"<tr data-run-id=\"{esc(run_id)}\"{row_cls}><td>{mark}</td>{''.join(cells)}</tr>")
    if not runs:
        body.append(f"<tr><td colspan=\"{len(columns) + 1}\"><i>no runs</i></td></tr>")
    return (f"{STYLE}<table class=\"lt-table lt-runs\"><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


@dataclass
class ComparedRow:
    """One param across the compared runs; ``differs`` when any two values (or absences) differ."""

    key: str
    values: list[str | None]
    differs: bool


def compare_params(runs: Sequence[Run]) -> list[ComparedRow]:
    """Every param of any run, side by side, differing ones first-class (sorted by key)."""
    keys = sorted({k for run in runs for k in run.params})
    rows = []
    for key in keys:
        values = [run.params.get(key) for run in runs]
        rows.append(ComparedRow(key, values, len(set(values)) > 1))
    return rows


def compare_table(runs: Sequence[Run], ui_base: str | None = None) -> str:
    """Params (differences marked ≠ and highlighted), then the latest metrics, one column per run."""
    head = "".join(f"<th>{run_link(r, ui_base)}</th>" for r in runs)
    rows: list[str] = []
    for row in compare_params(runs):
        cls = " class=\"lt-diff\"" if row.differs else ""
        mark = "≠" if row.differs else ""
        cells = "".join(f"<td>{esc(v) if v is not None else '<i>—</i>'}</td>" for v in row.values)
        rows.append(f"<tr{cls} data-param=\"{esc(row.key)}\"><td>{mark}</td>"
                    f"<th>{esc(row.key)}</th>{cells}</tr>")
    metric_keys = sorted({k for run in runs for k in run.metrics})
    for key in metric_keys:
        cells = "".join(
            f"<td class=\"lt-num\">{esc(format_value(r.metrics[key].value)) if key in r.metrics else ''}</td>"
            for r in runs)
        rows.append(f"<tr data-metric=\"{esc(key)}\"><td></td><th>{esc(key)} (metric)</th>{cells}</tr>")
    differing = sum(1 for row in compare_params(runs) if row.differs)
    caption = f"{len(runs)} runs · {differing} params differ (≠)"
    return (f"{STYLE}<table class=\"lt-table lt-compare\"><caption>{esc(caption)}</caption>"
            f"<thead><tr><th></th><th>param</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def links(runs: Sequence[Run], ui_base: str | None) -> str:
    """Links to the runs' pages, or why there are none."""
    if not runs:
        return message("Select runs first.")
    if not ui_base:
        return message("The labtrack web UI is not reachable from this kernel: open it from "
                       "JupyterLab's labtrack tile, or set LABTRACK_UI_URL to its address.")
    items = "".join(f"<li>{run_link(r, ui_base)} <code>{esc(r.info.run_id)}</code></li>" for r in runs)
    return f"<div class=\"lt-links\">Open in labtrack:<ul>{items}</ul></div>"


def message(text: str, error: bool = False) -> str:
    cls = "lt-error" if error else "lt-note"
    return f"{STYLE}<div class=\"{cls}\">{esc(text)}</div>" if text else ""

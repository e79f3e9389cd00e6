"""The RunTable's table: its HTML, with clicks on rows (select) and headers (sort) sent back.

An ``anywidget`` (its front end is the small ES module below, loaded by
anywidget's own lab extension), because ipywidgets' ``HTML`` cannot report
clicks.  The markup still comes from ``markup.run_table`` (every run value
escaped there), so the module only sets ``innerHTML`` to it and listens:

- a click on a row toggles that run in ``selected`` (the run ids, in order,
  runs of other pages included); the row is marked at once, and the kernel's
  redraw confirms it;
- a click on a column header asks to sort by it (``sort_click``: the column and
  a counter, so a second click on the same header is a change too); the kernel
  flips the direction when it already sorts by that column;
- a click on a link (the run's name) opens the run page and selects nothing.
"""

from __future__ import annotations

from typing import Any

from labtrack.errors import require_extra

ESM = """
function render({ model, el }) {
  el.classList.add("lt-table-view");
  const draw = () => { el.innerHTML = model.get("html"); };
  draw();
  model.on("change:html", draw);
  el.addEventListener("click", (event) => {
    const target = event.target;
    if (!(target instanceof Element) || target.closest("a")) return;
    const th = target.closest("th[data-col]");
    if (th) {
      const last = model.get("sort_click") || {};
      model.set("sort_click", { key: th.dataset.col, n: (last.n || 0) + 1 });
      model.save_changes();
      return;
    }
    const row = target.closest("tr[data-run-id]");
    if (!row) return;
    const id = row.dataset.runId;
    const now = [...model.get("selected")];
    const next = now.includes(id) ? now.filter((x) => x !== id) : [...now, id];
    row.classList.toggle("lt-selected", next.includes(id));
    model.set("selected", next);
    model.save_changes();
  });
}
export default { render };
"""


def table_view_class() -> Any:
    """The widget class (made on first use: anywidget and traitlets load only then)."""
    global _CLASS
    if _CLASS is None:
        anywidget = require_extra("anywidget", "widgets", "lt.widgets.RunTable's clickable table")
        import traitlets

        class TableView(anywidget.AnyWidget):  # type: ignore[misc, name-defined]
            """The run table's HTML; ``selected`` and ``sort_click`` come back from clicks."""

            _esm = ESM
            html = traitlets.Unicode("").tag(sync=True)
            selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
            sort_click = traitlets.Dict().tag(sync=True)

        _CLASS = TableView
    return _CLASS


_CLASS: Any = None

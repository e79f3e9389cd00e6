// The runs table's side panel: a click on a row (outside its links and boxes) opens the run
// here, beside the table, with its status, params, latest metrics and its markdown note,
// editable as on the run page (editors.runNoteEditor). The run is read fresh: a table row may
// carry only the columns it shows.

import { h, replace } from "../dom";
import { runNoteEditor } from "../editors";
import { fmtDuration, fmtNum, fmtTime, runDuration } from "../format";
import { displayName, getRun, Run } from "../model";

export interface RunPanel {
  el: HTMLElement;
  open(runId: string): Promise<void>;
  close(): void;
  readonly runId: string;
}

export function runPanel(onClose: () => void): RunPanel {
  const el = h("aside", { class: "run-panel", hidden: true, "aria-label": "run details" });
  let current = "";
  let seq = 0;

  const kv = (rows: [string, string][]) =>
    rows.length
      ? h("table", { class: "kv" }, h("tbody", null, rows.map(([k, v]) => h("tr", null, h("th", null, k), h("td", { title: v }, v)))))
      : h("p", { class: "muted" }, "None.");

  const draw = (run: Run) => {
    const params = Object.keys(run.params).sort((a, b) => a.localeCompare(b)).map((k): [string, string] => [k, run.params[k]]);
    const metrics = Object.keys(run.metrics).sort((a, b) => a.localeCompare(b)).map((k): [string, string] => [k, fmtNum(run.metrics[k].value)]);
    replace(
      el,
      h(
        "div",
        { class: "panel-head" },
        h("a", { class: "panel-run-link", href: `#/runs/${encodeURIComponent(run.id)}` }, displayName(run)),
        h("button", { class: "panel-close", "aria-label": "close the side panel", onclick: () => close() }, "×"),
      ),
      h(
        "div",
        { class: "muted panel-meta" },
        h("span", { class: `status status-${run.status.toLowerCase()}` }, run.status),
        ` ${fmtTime(run.start)} · ${fmtDuration(runDuration(run.start, run.end, run.status))} · ${run.user}`,
      ),
      runNoteEditor(run),
      h("h2", null, "Parameters"),
      kv(params),
      h("h2", null, "Metrics (latest)"),
      kv(metrics),
    );
  };

  const close = () => {
    seq++;
    current = "";
    el.hidden = true;
    onClose();
  };

  return {
    el,
    get runId() {
      return current;
    },
    async open(runId: string) {
      const mine = ++seq;
      current = runId;
      el.hidden = false;
      replace(el, h("div", { class: "muted" }, "Loading…"));
      try {
        const run = await getRun(runId);
        if (mine === seq) draw(run);
      } catch (e) {
        if (mine === seq) replace(el, h("div", { class: "error" }, (e as Error).message), h("button", { class: "panel-close", onclick: () => close() }, "Close"));
      }
    },
    close,
  };
}

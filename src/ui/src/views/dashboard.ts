// A dashboard of chart panels over the runs the runs page shows: each panel plots the metrics the
// user picked against step, relative or wall time, smoothed, on a linear or log scale, one line per
// run, or, grouped by a param or tag, one mean line per group with a ± std band. The panels live in
// the hash ("panels", "dash"), so a saved view (savedviews.ts) keeps them and a link shares them.

import { LineChart, Series, smooth } from "../chart";
import { aggregate, asNumber, column, compareValues } from "../columns";
import { h, replace } from "../dom";
import { color, fmtNum } from "../format";
import { ChartSettings, chartControls, pointsPerRun, XMode, xKind, xOf } from "../metricchart";
import { displayName, Experiment, Run } from "../model";
import { current, setQuery } from "../router";
import { Downsampled, fetchSeries, pool } from "../series";

export interface Panel {
  title: string;
  metrics: string[];
  x: XMode;
  smoothing: number;
  log: boolean;
  group: string; // "" or a column id: "params.lr", "tags.team", "attr.user"
}

/** At most this many runs (in the table's order) feed a panel: each costs one request per metric. */
export const MAX_RUNS = 200;
const MAX_TABLE_ROWS = 5000;
const BINS = 500;

export function parsePanels(raw: string | null): Panel[] {
  if (!raw) return [];
  try {
    const list = JSON.parse(raw) as Partial<Panel>[];
    if (!Array.isArray(list)) return [];
    return list
      .filter((p) => p && Array.isArray(p.metrics) && p.metrics.length)
      .map((p) => ({
        title: String(p.title ?? ""),
        metrics: p.metrics!.map(String),
        x: p.x === "relative" || p.x === "wall" ? p.x : "step",
        smoothing: Math.min(0.99, Math.max(0, Number(p.smoothing) || 0)),
        log: p.log === true,
        group: typeof p.group === "string" ? p.group : "",
      }));
  } catch {
    return [];
  }
}

/** One line (with an optional band) and the numbers behind it, for the panel's data table. */
interface Line {
  label: string;
  metric: string;
  x: number[];
  y: number[];
  std?: number[];
  n?: number[];
}

/** Mean ± std of a group's runs at each x: exact x when the runs share them, else in bins. */
export function groupBands(runs: { x: Float64Array; y: Float64Array }[], exact: boolean): { x: number[]; mean: number[]; std: number[]; n: number[] } {
  const at = new Map<number, number[]>();
  if (exact) {
    for (const r of runs) {
      for (let i = 0; i < r.x.length; i++) {
        let vs = at.get(r.x[i]);
        if (!vs) at.set(r.x[i], (vs = []));
        vs.push(r.y[i]);
      }
    }
  } else {
    let lo = Infinity;
    let hi = -Infinity;
    for (const r of runs) if (r.x.length) [lo, hi] = [Math.min(lo, r.x[0]), Math.max(hi, r.x[r.x.length - 1])];
    if (!Number.isFinite(lo)) return { x: [], mean: [], std: [], n: [] };
    const width = hi > lo ? (hi - lo) / BINS : 1;
    for (const r of runs) {
      // each run counts once per bin: the mean of its points there
      const sums = new Map<number, [number, number]>();
      for (let i = 0; i < r.x.length; i++) {
        if (!Number.isFinite(r.y[i])) continue;
        const b = Math.min(BINS - 1, Math.floor((r.x[i] - lo) / width));
        const s = sums.get(b) ?? [0, 0];
        sums.set(b, [s[0] + r.y[i], s[1] + 1]);
      }
      for (const [b, [sum, count]] of sums) {
        const center = lo + (b + 0.5) * width;
        let vs = at.get(center);
        if (!vs) at.set(center, (vs = []));
        vs.push(sum / count);
      }
    }
  }
  const out = { x: [] as number[], mean: [] as number[], std: [] as number[], n: [] as number[] };
  for (const x of [...at.keys()].sort((a, b) => a - b)) {
    const a = aggregate(at.get(x)!);
    if (!a) continue;
    out.x.push(x);
    out.mean.push(a.mean);
    out.std.push(a.std);
    out.n.push(a.n);
  }
  return out;
}

class PanelView {
  readonly el: HTMLElement;
  private chart: LineChart;
  private info = h("span", { class: "muted chart-info" }, "loading…");
  private legend = h("div", { class: "legend" });
  private data = h("details", { class: "panel-data" }, h("summary", null, "Data"));
  private lines: Line[] = [];
  private seq = 0;

  constructor(
    private panel: Panel,
    private experiments: Map<string, Experiment>,
    onEdit: () => void,
    onRemove: () => void,
  ) {
    this.chart = new LineChart({ xKind: xKind(panel.x), logY: panel.log, height: 260 });
    const title = panel.title || panel.metrics.join(", ");
    const by = panel.group && !panel.title ? ` by ${column(panel.group, experiments).label}` : "";
    this.el = h(
      "section",
      { class: "chart-card dash-panel", "aria-label": `panel ${title}`, dataset: { metrics: panel.metrics.join(","), group: panel.group } },
      h(
        "div",
        { class: "chart-head" },
        h("b", { class: "chart-title" }, title, by ? h("span", { class: "muted" }, by) : null),
        this.info,
        h("span", { class: "dash-panel-actions" }, h("button", { class: "edit-panel", onclick: onEdit }, "Edit"), h("button", { class: "remove-panel", onclick: onRemove }, "Remove")),
      ),
      this.chart.el,
      this.legend,
      this.data,
    );
    this.data.addEventListener("toggle", () => this.renderTable());
  }

  async load(runs: Run[]): Promise<void> {
    const seq = ++this.seq;
    this.el.dataset.ready = "";
    const p = this.panel;
    const used = runs.slice(0, MAX_RUNS);
    const mp = pointsPerRun(used.length * p.metrics.length);
    const jobs = used.flatMap((run) => p.metrics.map((metric) => ({ run, metric })));
    let errors = 0;
    const got = await pool(jobs, 6, async (j): Promise<Downsampled | undefined> => {
      if (!(j.metric in j.run.metrics)) return undefined; // the run never logged it
      try {
        return await fetchSeries(j.run.id, j.metric, mp);
      } catch {
        errors++;
        return undefined;
      }
    });
    if (seq !== this.seq) return;
    let down = false;
    // Each run's series on the panel's x axis, smoothed (before grouping, as each run is drawn).
    const series = jobs.map((j, i) => {
      const d = got[i];
      if (!d) return undefined;
      down = down || d.downsampled;
      const fx = xOf(p.x, j.run, d.points);
      const pairs = d.points.map((pt) => [fx(pt), pt.value] as [number, number]);
      if (p.x !== "step") pairs.sort((a, b) => a[0] - b[0]);
      const x = Float64Array.from(pairs, (q) => q[0]);
      const raw = Float64Array.from(pairs, (q) => q[1]);
      return { ...j, x, y: p.smoothing > 0 ? smooth(raw, p.smoothing) : raw };
    });
    const lines: Line[] = [];
    const drawn: Series[] = [];
    const many = p.metrics.length > 1;
    if (p.group) {
      const col = column(p.group, this.experiments);
      const keys = new Map<string, number>();
      for (const r of used) keys.set(col.text(r), 0);
      const order = [...keys.keys()].sort((a, b) => compareValues(asNumber(a) ?? (a || undefined), asNumber(b) ?? (b || undefined)));
      let ci = 0;
      for (const key of order) {
        for (const metric of p.metrics) {
          const members = series.filter((s): s is NonNullable<typeof s> => !!s && s.metric === metric && col.text(s.run) === key);
          if (!members.length) continue;
          const b = groupBands(members, p.x === "step" && !down);
          const label = `${col.label} = ${key === "" ? "(none)" : key}${many ? ` · ${metric}` : ""}`;
          lines.push({ label, metric, x: b.x, y: b.mean, std: b.std, n: b.n });
          const mean = Float64Array.from(b.mean);
          drawn.push({
            label: `${label} (${members.length} runs)`,
            color: color(ci++),
            x: Float64Array.from(b.x),
            y: mean,
            band: [mean.map((m, i) => m - b.std[i]), mean.map((m, i) => m + b.std[i])],
          });
        }
      }
    } else {
      series.forEach((s, i) => {
        if (!s) return;
        const label = `${displayName(s.run)}${many ? ` · ${s.metric}` : ""}`;
        lines.push({ label, metric: s.metric, x: [...s.x], y: [...s.y] });
        drawn.push({ label, color: color(i), x: s.x, y: s.y });
      });
    }
    this.lines = lines;
    this.chart.setData(drawn, false);
    replace(
      this.legend,
      drawn.slice(0, 30).map((s) => h("span", { class: "legend-item" }, h("span", { class: "swatch", style: { background: s.color } }), s.label)),
      drawn.length > 30 ? h("span", { class: "muted" }, `+${drawn.length - 30} more`) : null,
    );
    const parts = [`${used.length} runs`];
    if (runs.length > used.length) parts.push(`the first ${used.length} of ${runs.length.toLocaleString()}`);
    if (down) parts.push(p.group ? "downsampled: bands in bins" : "downsampled");
    if (errors) parts.push(`${errors} series failed to load`);
    if (!drawn.length) parts.push("none of these runs logged these metrics");
    this.info.textContent = parts.join(" · ");
    this.el.dataset.lines = String(drawn.length);
    if (this.data.open) this.renderTable();
    this.el.dataset.ready = "1";
  }

  /** The numbers behind the lines, as a table (built when opened: it can be long). */
  private renderTable(): void {
    if (!this.data.open) return;
    const grouped = !!this.panel.group;
    const rows: HTMLElement[] = [];
    for (const l of this.lines) {
      for (let i = 0; i < l.x.length && rows.length < MAX_TABLE_ROWS; i++) {
        rows.push(
          h(
            "tr",
            { dataset: { series: l.label, metric: l.metric, x: String(l.x[i]), y: String(l.y[i]), std: l.std ? String(l.std[i]) : undefined, n: l.n ? String(l.n[i]) : undefined } },
            h("td", null, l.label),
            h("td", { class: "num" }, fmtNum(l.x[i])),
            h("td", { class: "num" }, fmtNum(l.y[i])),
            grouped ? h("td", { class: "num" }, fmtNum(l.std![i])) : null,
            grouped ? h("td", { class: "num" }, String(l.n![i])) : null,
          ),
        );
      }
    }
    const total = this.lines.reduce((a, l) => a + l.x.length, 0);
    replace(
      this.data,
      h("summary", null, "Data"),
      h(
        "table",
        { class: "panel-table" },
        h("thead", null, h("tr", null, h("th", null, grouped ? "Group" : "Run"), h("th", null, this.panel.x === "step" ? "Step" : this.panel.x === "wall" ? "Time (ms)" : "Seconds"), h("th", null, grouped ? "Mean" : "Value"), grouped ? h("th", null, "Std") : null, grouped ? h("th", null, "Runs") : null)),
        h("tbody", null, rows),
      ),
      total > rows.length ? h("div", { class: "muted" }, `The first ${rows.length.toLocaleString()} of ${total.toLocaleString()} rows.`) : null,
    );
  }

  destroy(): void {
    this.seq++;
    this.chart.destroy();
  }
}

/** The dashboard pane of an experiment's runs page. */
export class Dashboard {
  readonly el: HTMLElement;
  private panels: Panel[];
  private shown: boolean;
  private views: PanelView[] = [];
  private runs: Run[] = [];
  private runsKey = "";
  private drawnKey = "";
  private grid = h("div", { class: "chart-grid dash-grid" });
  private editor = h("div", { class: "dash-editor", hidden: true });
  private timer: number | undefined;

  constructor(private experiments: Map<string, Experiment>) {
    const q = current().q;
    this.panels = parsePanels(q.get("panels"));
    this.shown = q.get("dash") === "1";
    this.el = h(
      "section",
      { class: "dashboard", "aria-label": "dashboard", hidden: !this.shown },
      h("div", { class: "toolbar" }, h("b", null, "Dashboard"), h("button", { class: "add-panel", onclick: () => this.edit(-1) }, "Add panel")),
      this.editor,
      this.grid,
    );
  }

  get visible(): boolean {
    return this.shown;
  }

  toggle(show = !this.shown): void {
    this.shown = show;
    this.el.hidden = !show;
    setQuery({ dash: show ? "1" : undefined });
    if (!show) return;
    this.runsKey = "";
    this.setRuns(this.runs);
  }

  /** The runs the table shows, in its order (called on each table rebuild: cheap unless shown). */
  setRuns(runs: Run[]): void {
    this.runs = runs;
    if (!this.shown) return;
    const key = runs.slice(0, MAX_RUNS).map((r) => r.id).join(",") + `|${runs.length}`;
    if (key === this.runsKey) return;
    this.runsKey = key;
    this.schedule(300);
  }

  private schedule(ms: number): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.render(), ms);
  }

  private persist(): void {
    setQuery({ panels: this.panels.length ? JSON.stringify(this.panels) : undefined });
  }

  private render(): void {
    const key = `${this.runsKey}|${JSON.stringify(this.panels)}`;
    if (key === this.drawnKey && this.views.length === this.panels.length) return;
    this.drawnKey = key;
    for (const v of this.views) v.destroy();
    this.views = this.panels.map(
      (p, i) =>
        new PanelView(p, this.experiments, () => this.edit(i), () => {
          this.panels = this.panels.filter((_, j) => j !== i);
          this.persist();
          this.render();
        }),
    );
    replace(this.grid, this.views.map((v) => v.el), this.panels.length ? null : h("div", { class: "muted" }, "No panels yet: add one to chart metrics of these runs."));
    this.el.dataset.panels = String(this.panels.length);
    for (const v of this.views) void v.load(this.runs);
  }

  /** The panel editor: metrics, group, x axis, smoothing, log scale; `i` < 0 adds a panel. */
  private edit(i: number): void {
    const p: Panel = i >= 0 ? { ...this.panels[i] } : { title: "", metrics: [], x: "step", smoothing: 0, log: false, group: "" };
    const metricKeys = new Set<string>();
    const params = new Set<string>();
    const tags = new Set<string>();
    for (const r of this.runs) {
      for (const k in r.metrics) metricKeys.add(k);
      for (const k in r.params) params.add(k);
      for (const k in r.tags) if (!k.startsWith("mlflow.")) tags.add(k);
    }
    for (const m of p.metrics) metricKeys.add(m);
    const sorted = (s: Set<string>) => [...s].sort((a, b) => a.localeCompare(b));
    const chosen = new Set(p.metrics);
    const title = h("input", { type: "text", class: "panel-title", value: p.title, placeholder: "Title (optional)", "aria-label": "panel title" });
    const boxes = sorted(metricKeys).map((m) =>
      h("label", { class: "col-option" }, h("input", { type: "checkbox", class: "panel-metric", value: m, checked: chosen.has(m), onchange: (e: Event) => ((e.target as HTMLInputElement).checked ? chosen.add(m) : chosen.delete(m)) }), " ", m),
    );
    const group = h(
      "select",
      { class: "panel-group", "aria-label": "group runs by" },
      h("option", { value: "" }, "(none: one line per run)"),
      h("optgroup", { label: "Parameters" }, sorted(params).map((k) => h("option", { value: `params.${k}` }, k))),
      h("optgroup", { label: "Tags" }, sorted(tags).map((k) => h("option", { value: `tags.${k}` }, k))),
      h("optgroup", { label: "Attributes" }, ["attr.user", "attr.status"].map((id) => h("option", { value: id }, column(id, this.experiments).label))),
    );
    if (p.group && !group.querySelector(`option[value="${CSS.escape(p.group)}"]`)) group.appendChild(h("option", { value: p.group }, p.group));
    group.value = p.group;
    let settings: ChartSettings = { x: p.x, smoothing: p.smoothing, logY: p.log };
    const controls = chartControls(settings, (s) => {
      settings = s;
    });
    const err = h("div", { class: "error inline-error", role: "alert" });
    const save = () => {
      const metrics = sorted(metricKeys).filter((m) => chosen.has(m));
      if (!metrics.length) {
        err.textContent = "Pick at least one metric.";
        return;
      }
      const next: Panel = { title: title.value.trim(), metrics, x: settings.x, smoothing: settings.smoothing, log: settings.logY, group: group.value };
      this.panels = i >= 0 ? this.panels.map((q, j) => (j === i ? next : q)) : [...this.panels, next];
      this.editor.hidden = true;
      this.persist();
      this.render();
    };
    replace(
      this.editor,
      h("h3", null, i >= 0 ? "Edit panel" : "New panel"),
      h("label", null, "Title ", title),
      h("fieldset", { class: "panel-metrics" }, h("legend", null, "Metrics"), boxes.length ? boxes : h("span", { class: "muted" }, "These runs have no metrics.")),
      h("label", null, "Group by ", group, h("span", { class: "muted" }, " (mean ± std band per group)")),
      controls,
      h("div", { class: "toolbar" }, h("button", { class: "save-panel", onclick: save }, i >= 0 ? "Save panel" : "Add"), h("button", { class: "cancel-panel", onclick: () => (this.editor.hidden = true) }, "Cancel")),
      err,
    );
    this.editor.hidden = false;
    title.focus();
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    for (const v of this.views) v.destroy();
  }
}
